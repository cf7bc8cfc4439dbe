//! `feed.busy_poll_us` in both isolation modes against the simulator: the spinning runtime (and,
//! in process isolation, the worker's non-blocking stdout pipe written from its own task) delivers
//! the same tape and book as the sleeping default: zero lost, zero duplicated trades against the
//! journal, the book equal to the true book, across a reconnect on request. (That the
//! spinner sleeps once the market is quiet is `busy_poll`'s unit test.)

mod feed_common;

use std::time::Duration;

use feed_common::Rig;
use hft_connector::cli::run::Isolation;
use hft_connector::feed::FeedEvent;
use hft_connector::protocol::Category;
use hft_connector::sim::Simulator;

/// A hang guard only.
const GUARD: Duration = Duration::from_secs(60);

async fn busy_polling_loses_nothing(isolation: Isolation) {
    let sim = Simulator::start(feed_common::sim_config(Category::Linear))
        .await
        .expect("simulator starts");
    let mut cfg = feed_common::feed_config(&sim, Category::Linear);
    cfg.feed.busy_poll_us = 2_000;
    let rig = Rig::with_isolation(
        sim,
        cfg,
        Category::Linear,
        isolation,
        feed_common::worker_options(),
    )
    .await;
    rig.until_flowing().await;
    let mark = rig.len();
    rig.monitor()
        .reconnect("test: busy polling across a reconnect");
    let (i, _) = rig
        .wait_for(mark, GUARD, "the second connection", |e| {
            matches!(e, FeedEvent::Connected { connection: 2, .. })
        })
        .await;
    rig.until_live_trade_after(i).await;
    rig.quiesce().await;
    rig.assert_tape_complete();
    rig.assert_book_matches();
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_in_process_feed_that_busy_polls_loses_nothing() {
    busy_polling_loses_nothing(Isolation::InProcess).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_busy_polls_loses_nothing() {
    busy_polling_loses_nothing(Isolation::Process).await;
}
