//! The `instruments-info` records (spot and futures shapes) and its pagination cursor.

use serde_json::{json, Value};

use super::instrument::Instrument;
use crate::protocol::Category;

/// A linear or inverse instrument record.
pub fn futures_json(i: &Instrument) -> Value {
    let (contract, settle) = match i.category {
        Category::Inverse => ("InversePerpetual", i.base_coin.as_str()),
        _ => ("LinearPerpetual", i.quote_coin.as_str()),
    };
    json!({
        "symbol": i.symbol,
        "contractType": contract,
        "status": "Trading",
        "baseCoin": i.base_coin,
        "quoteCoin": i.quote_coin,
        "launchTime": "1584230400000",
        "deliveryTime": "0",
        "deliveryFeeRate": "",
        "priceScale": i.price_scale.to_string(),
        "leverageFilter": {"minLeverage": "1", "maxLeverage": "100.00", "leverageStep": "0.01"},
        "priceFilter": {
            "minPrice": i.tick_size().to_string(),
            "maxPrice": i.price(i.start_ticks * 20).to_string(),
            "tickSize": i.tick_size().to_string(),
        },
        "lotSizeFilter": {
            "maxOrderQty": i.qty(i.typical_lots * 10_000).to_string(),
            "minOrderQty": i.qty_step().to_string(),
            "qtyStep": i.qty_step().to_string(),
            "postOnlyMaxOrderQty": i.qty(i.typical_lots * 10_000).to_string(),
            "maxMktOrderQty": i.qty(i.typical_lots * 5_000).to_string(),
            "minNotionalValue": "5",
        },
        "unifiedMarginTrade": true,
        "fundingInterval": 480,
        "settleCoin": settle,
        "copyTrading": "both",
        "upperFundingRate": "0.005",
        "lowerFundingRate": "-0.005",
        "isPreListing": false,
        "preListingInfo": null,
        "displayName": "",
    })
}

/// A spot instrument record (`basePrecision` instead of `qtyStep`).
pub fn spot_json(i: &Instrument) -> Value {
    json!({
        "symbol": i.symbol,
        "baseCoin": i.base_coin,
        "quoteCoin": i.quote_coin,
        "innovation": "0",
        "status": "Trading",
        "marginTrading": "utaOnly",
        "stTag": "0",
        "lotSizeFilter": {
            "basePrecision": i.qty_step().to_string(),
            "quotePrecision": "0.0000001",
            "minOrderQty": i.qty_step().to_string(),
            "maxOrderQty": i.qty(i.typical_lots * 10_000).to_string(),
            "minOrderAmt": "1",
            "maxOrderAmt": "4000000",
        },
        "priceFilter": {"tickSize": i.tick_size().to_string()},
    })
}

/// The last symbol of the page a cursor (`first%3DA%26last%3DB`, decoded or not) continues after.
pub fn cursor_last(cursor: &str) -> Option<String> {
    let decoded = cursor.replace("%3D", "=").replace("%26", "&");
    decoded
        .split('&')
        .find_map(|kv| kv.strip_prefix("last="))
        .map(str::to_string)
}
