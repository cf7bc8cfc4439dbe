//! Resolving `/{symbol}?category=` to a configured feed, and the small query-parameter parsers the
//! API routes share (numbers with clear 400 errors instead of plain-text rejections).

use std::collections::HashMap;
use std::str::FromStr;

use axum::http::StatusCode;

use super::error::{ApiError, ApiResult};
use crate::protocol::Category;
use crate::service::{FeedKey, ServiceState};

/// Query parameters as given (parsed per route, so errors name the parameter).
pub type Params = HashMap<String, String>;

/// The configured feed for `symbol` (case-insensitive) and the optional `category` parameter.
/// Without `category` the symbol must be served in exactly one category.
pub fn resolve(state: &ServiceState, symbol: &str, params: &Params) -> ApiResult<FeedKey> {
    let symbol = symbol.trim().to_ascii_uppercase();
    let category = match params.get("category").map(|c| c.trim()) {
        None | Some("") => None,
        Some(c) => {
            Some(Category::from_str(&c.to_ascii_lowercase()).map_err(ApiError::bad_request)?)
        }
    };
    let keys = state.keys();
    let matching: Vec<&FeedKey> = keys.iter().filter(|k| k.symbol == symbol).collect();
    let served = || {
        keys.iter()
            .map(|k| format!("{}/{}", k.category, k.symbol))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (category, matching.as_slice()) {
        (_, []) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_feed",
            format!(
                "unknown symbol {symbol:?}: this service serves {}",
                served()
            ),
        )),
        (Some(c), found) => found
            .iter()
            .find(|k| k.category == c)
            .map(|k| (*k).clone())
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_feed",
                    format!(
                        "{symbol} is not served in category {c}: this service serves {}",
                        served()
                    ),
                )
            }),
        (None, [one]) => Ok((*one).clone()),
        (None, many) => Err(ApiError::bad_request(format!(
            "{symbol} is served in several categories ({}): add ?category=",
            many.iter()
                .map(|k| k.category.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// An optional unsigned integer parameter; a present but invalid value is a 400 naming it.
pub fn opt_u64(params: &Params, name: &str) -> ApiResult<Option<u64>> {
    match params.get(name).map(|v| v.trim()) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
            ApiError::bad_request(format!(
                "invalid {name} {v:?}: expected a non-negative integer"
            ))
        }),
    }
}

/// An optional count parameter within `1..=max`, `default` when absent.
pub fn bounded(params: &Params, name: &str, default: u64, max: u64) -> ApiResult<u64> {
    match opt_u64(params, name)? {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::bad_request(format!(
            "invalid {name} {n}: expected 1 to {max}"
        ))),
    }
}
