//! The running feeds the HTTP actions can reach, by category: each feed's
//! [`SourceMonitor`], registered by the runner as it starts the feed.

use std::collections::BTreeMap;
use std::sync::RwLock;

use crate::protocol::Category;
use crate::source::SourceMonitor;

/// The feeds' monitors by category (empty until the runner starts them).
#[derive(Debug, Default)]
pub struct FeedControls {
    feeds: RwLock<BTreeMap<Category, SourceMonitor>>,
}

impl FeedControls {
    /// Makes `category`'s feed reachable (a later feed of the same category replaces it).
    pub fn register(&self, category: Category, monitor: SourceMonitor) {
        self.feeds
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(category, monitor);
    }

    /// `category`'s feed, if one runs.
    pub fn get(&self, category: Category) -> Option<SourceMonitor> {
        self.feeds
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&category)
            .cloned()
    }

    /// The categories with a running feed.
    pub fn categories(&self) -> Vec<Category> {
        self.feeds
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect()
    }
}
