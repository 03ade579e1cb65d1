//! The cast: services, their endpoints and rates, the errors they raise and
//! the secrets careless code writes into logs.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// The language a legacy service writes plain-text logs and traces in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Java,
    Python,
    Go,
    Node,
}

/// How a service logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// One JSON object per line, as the guide asks.
    Json,
    /// Plain text with multi-line stack traces.
    Text(Lang),
}

#[derive(Debug, Clone)]
pub struct Endpoint {
    pub method: &'static str,
    pub route: &'static str,
    pub ok_status: u16,
    pub base_ms: f64,
}

impl Endpoint {
    /// The route with its `{id}` placeholders filled, and the user id used.
    pub fn concrete_path(&self, rng: &mut ChaCha8Rng) -> (String, (u32,)) {
        let user = zipf_id(rng, 50_000);
        let mut path = String::with_capacity(self.route.len() + 16);
        let mut first = true;
        for (i, part) in self.route.split("{id}").enumerate() {
            if i > 0 {
                let id = if first { user } else { rng.random_range(1..1_000_000) };
                first = false;
                path.push_str(itoa::Buffer::new().format(id));
            }
            path.push_str(part);
        }
        (path, (user,))
    }
}

/// A few ids are hot, most are rare.
fn zipf_id(rng: &mut ChaCha8Rng, n: u32) -> u32 {
    let u: f64 = rng.random();
    ((n as f64).powf(u) as u32).max(1)
}

#[derive(Debug, Clone)]
pub struct ServiceProfile {
    pub name: String,
    pub version: String,
    pub weight: f64,
    pub style: Style,
    pub error_rate: f64,
    pub slow_rate: f64,
    pub secret_rate: f64,
    pub endpoints: Vec<Endpoint>,
}

const NAMES: [&str; 24] = [
    "api-gateway",
    "checkout",
    "catalog",
    "search",
    "cart",
    "users",
    "orders",
    "legacy-billing",
    "payments",
    "inventory",
    "shipping",
    "ml-scoring",
    "notifications",
    "pricing",
    "auth",
    "edge-proxy",
    "reviews",
    "recommendations",
    "fraud",
    "webhooks-node",
    "media",
    "analytics",
    "coupons",
    "ledger",
];

const ROUTES: [(&str, &str, u16, f64); 12] = [
    ("GET", "/v1/users/{id}", 200, 12.0),
    ("GET", "/v1/users/{id}/orders", 200, 35.0),
    ("GET", "/v1/users/{id}/orders/{id}", 200, 18.0),
    ("POST", "/v1/orders", 201, 80.0),
    ("POST", "/v1/payments", 201, 140.0),
    ("GET", "/v1/products/{id}", 200, 9.0),
    ("GET", "/v1/search", 200, 60.0),
    ("PUT", "/v1/carts/{id}/items/{id}", 200, 25.0),
    ("DELETE", "/v1/carts/{id}", 204, 15.0),
    ("GET", "/healthz", 200, 1.0),
    ("POST", "/v1/auth/token", 200, 45.0),
    ("GET", "/v1/shipments/{id}/tracking", 200, 70.0),
];

/// Error type, message, dependency.
pub const ERRORS: [(&str, &str, &str); 8] = [
    ("TimeoutError", "upstream call exceeded 800ms", "payments-api"),
    (
        "DBConnectionError",
        "could not acquire connection from pool",
        "orders-db",
    ),
    ("UpstreamUnavailable", "503 from upstream", "inventory-api"),
    ("RedisTimeout", "GET timed out after 50ms", "session-redis"),
    ("KafkaProduceError", "broker not available", "events-kafka"),
    ("DeadlockDetected", "deadlock detected while updating row", "ledger-db"),
    ("CircuitOpenError", "circuit breaker is open", "fraud-api"),
    ("ValidationPanic", "unexpected nil amount", "pricing-api"),
];

pub const DEPENDENCIES: [&str; 6] = [
    "payments-api",
    "orders-db",
    "inventory-api",
    "session-redis",
    "events-kafka",
    "search-es",
];

/// The service table: `n` services, a few of them legacy text loggers.
pub fn services(n: usize, rng: &mut ChaCha8Rng) -> Vec<ServiceProfile> {
    (0..n)
        .map(|i| {
            let name = if i < NAMES.len() {
                NAMES[i].to_string()
            } else {
                format!("svc-{i:03}")
            };
            // A few mid-volume legacy services log plain text (7, 11, 15, 19, ...).
            let style = if i >= 7 && i % 4 == 3 {
                Style::Text([Lang::Java, Lang::Python, Lang::Go, Lang::Node][((i - 7) / 4) % 4])
            } else {
                Style::Json
            };
            let endpoints = (0..4)
                .map(|k| {
                    let (method, route, ok_status, base_ms) = ROUTES[(i * 3 + k * 5) % ROUTES.len()];
                    Endpoint {
                        method,
                        route,
                        ok_status,
                        base_ms,
                    }
                })
                .collect();
            ServiceProfile {
                name,
                version: format!("{}.{}.{}", 1 + i % 3, rng.random_range(0..20), rng.random_range(0..10)),
                // Zipf-like volumes: the busiest service logs ~n times the quietest.
                weight: 1.0 / ((i + 1) as f64).powf(1.1),
                style,
                error_rate: rng.random_range(0.03..0.06),
                slow_rate: rng.random_range(0.01..0.02),
                secret_rate: 0.03,
                endpoints,
            }
        })
        .collect()
}

/// Append one secret- or PII-carrying field to a JSON record being written
/// (the record's opening brace is already out; a comma is written first).
pub fn plant_secret(rng: &mut ChaCha8Rng, out: &mut Vec<u8>) {
    let n: u32 = rng.random_range(1000..9999);
    let digits = |rng: &mut ChaCha8Rng, k: usize| -> String {
        (0..k).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect()
    };
    let s = match rng.random_range(0..10) {
        0 => format!(",\"email\":\"minsu.kim{n}@example.co.kr\""),
        1 => format!(",\"headers\":{{\"authorization\":\"Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ1LXtufSJ9.{}\",\"user-agent\":\"okhttp/4.9\"}}", digits(rng, 12)),
        2 => format!(",\"body\":{{\"username\":\"kim{n}\",\"password\":\"Hunter2-{n}\"}}"),
        3 => format!(",\"phone\":\"010-{}-{}\"", digits(rng, 4), digits(rng, 4)),
        4 => ",\"card_number\":\"4111 1111 1111 1111\"".to_string(),
        5 => format!(",\"rrn\":\"9001{:02}-1{}\"", rng.random_range(10..28), digits(rng, 6)),
        6 => format!(",\"detail\":\"retrying with api_key=sk_live_{}\"", digits(rng, 24)),
        7 => ",\"aws_access_key_id\":\"AKIAIOSFODNN7EXAMPLE\"".to_string(),
        8 => format!(",\"callback\":\"https://svc:S3cr3t{n}@hooks.example.com/notify\""),
        _ => format!(",\"cookie\":\"session={}\"", digits(rng, 32)),
    };
    out.extend_from_slice(s.as_bytes());
}
