//! The HTTP routes as a table (method, path, parameters), for errors that answer a wrong form with
//! the right one: `GET /api/book` without a symbol says `GET /api/book/{symbol}?category=&top=N`.
//! The README's route table lists the same.

/// One route of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Method.
    pub method: &'static str,
    /// Path, `{symbol}` for the path parameter.
    pub path: &'static str,
    /// Query parameters, as the form to show (`""` for none).
    pub query: &'static str,
}

impl Route {
    /// `GET /api/book/{symbol}?category=&top=N`.
    pub fn form(&self) -> String {
        if self.query.is_empty() {
            format!("{} {}", self.method, self.path)
        } else {
            format!("{} {}?{}", self.method, self.path, self.query)
        }
    }
}

/// Every route of the read-only API.
pub const ROUTES: &[Route] = &[
    Route {
        method: "GET",
        path: "/",
        query: "",
    },
    Route {
        method: "GET",
        path: "/health",
        query: "",
    },
    Route {
        method: "GET",
        path: "/api/status",
        query: "",
    },
    Route {
        method: "GET",
        path: "/api/events/recent",
        query: "",
    },
    Route {
        method: "GET",
        path: "/api/events",
        query: "types=trade,book_top,candle,status,log&symbol=&category=",
    },
    Route {
        method: "GET",
        path: "/api/book/{symbol}",
        query: "category=&top=N",
    },
    Route {
        method: "GET",
        path: "/api/trades/{symbol}",
        query: "category=&limit=N&since_ms=",
    },
    Route {
        method: "GET",
        path: "/api/candles/{symbol}",
        query: "category=&interval=1m&from=&to=&limit=N",
    },
    Route {
        method: "GET",
        path: "/metrics",
        query: "",
    },
];

/// For a request that matched no route: the route it most likely meant, as a sentence.
pub fn hint(path: &str, query: Option<&str>) -> Option<String> {
    let trimmed = path.trim_end_matches('/');
    let with_symbol = ROUTES.iter().find(|r| {
        r.path
            .strip_suffix("/{symbol}")
            .is_some_and(|base| base == trimmed || path.starts_with(&format!("{base}/")))
    })?;
    let symbol = query
        .and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("symbol=").map(str::to_string))
        })
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "BTCUSDT".to_string());
    let example = with_symbol.path.replace("{symbol}", &symbol);
    Some(format!(
        "the symbol goes in the path: {} (e.g. {example})",
        with_symbol.form()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_symbol_gets_the_right_form() {
        let h = hint("/api/book", None).unwrap();
        assert!(h.contains("GET /api/book/{symbol}?category=&top=N"), "{h}");
        assert!(h.contains("/api/book/BTCUSDT"), "{h}");
        let h = hint("/api/trades/", Some("symbol=ETHUSDT&limit=5")).unwrap();
        assert!(h.contains("/api/trades/ETHUSDT"), "{h}");
        assert!(hint("/api/candles/BTCUSDT/extra", None).is_some());
        assert!(hint("/nothing", None).is_none());
    }
}
