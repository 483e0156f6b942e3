//! `postgresql`: a query whose first column of the first row is the value. Upstream: keda
//! `pkg/scalers/postgresql_scaler.go`; keda.md §7.
//!
//! The query runs through the simple-query protocol, so any numeric type (int, float,
//! numeric, or text holding a number) reads the same way. TLS (`sslmode` require/verify-*)
//! is not supported yet and is refused at parse time rather than silently downgraded.

use crate::error::ErrorContext;
use crate::params::{AE, M, MA};
use crate::{
    Measurement, MetricSpec, ParamError, Scaler, ScalerError, Secret, Target, TriggerId,
    TriggerParams, external_name, plain_measurement,
};
use std::time::Duration;
use tokio::sync::Mutex;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Parsed `postgresql` trigger.
#[derive(Debug, Clone)]
pub struct PostgresConfig {
    /// The SQL.
    pub query: String,
    /// Target per replica.
    pub target_query_value: f64,
    /// Active above this.
    pub activation_target_query_value: f64,
    /// libpq connection settings (secret: may hold the password).
    pub connection: Secret<String>,
    /// Printable `host:port/db`.
    pub address: String,
}

impl PostgresConfig {
    /// Parses and validates: `connection` (A, E) or all of host, port, userName, dbName,
    /// sslmode (A, M) plus `password` (A, E).
    pub fn parse(p: &TriggerParams) -> Result<Self, ParamError> {
        let target_query_value = match p.f64_opt("targetQueryValue", M)? {
            Some(t) if t > 0.0 => t,
            Some(_) => return Err(p.invalid("targetQueryValue", "must be greater than 0")),
            None if p.uses_scaling_modifiers => 0.0,
            None => {
                return Err(ParamError::Missing {
                    trigger: p.id.clone(),
                    param: "targetQueryValue".into(),
                });
            }
        };
        let (connection, config) = match p.secret("connection", AE) {
            Some(c) => {
                let cfg: tokio_postgres::Config = c.expose().parse().map_err(|_| {
                    p.invalid(
                        "connection",
                        "not a libpq connection string or postgres:// URL",
                    )
                })?;
                (c, cfg)
            }
            None => {
                let host = p.required_text("host", MA)?;
                let port = p.required_text("port", MA)?;
                let user = p.required_text("userName", MA)?;
                let db = p.required_text("dbName", MA)?;
                let sslmode = p.required_text("sslmode", MA)?;
                let quote = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
                let mut s = format!(
                    "host={} port={} user={} dbname={} sslmode={}",
                    quote(&host),
                    quote(&port),
                    quote(&user),
                    quote(&db),
                    quote(&sslmode)
                );
                if let Some(pw) = p.secret("password", AE) {
                    s.push_str(&format!(" password={}", quote(pw.expose())));
                }
                let cfg: tokio_postgres::Config = s.parse().map_err(|_| {
                    p.invalid(
                        "host",
                        "host, port, userName, dbName and sslmode do not form valid settings",
                    )
                })?;
                (Secret::new(s), cfg)
            }
        };
        if !matches!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable | tokio_postgres::config::SslMode::Prefer
        ) {
            return Err(p.invalid(
                "sslmode",
                "require and verify-* are not supported by tandem yet; use disable or prefer",
            ));
        }
        let host = config
            .get_hosts()
            .first()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .unwrap_or_default();
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let address = format!(
            "postgres://{host}:{port}/{}",
            config.get_dbname().unwrap_or_default()
        );
        Ok(PostgresConfig {
            query: p.required_text("query", M)?,
            target_query_value,
            activation_target_query_value: p.f64_or("activationTargetQueryValue", M, 0.0)?,
            connection,
            address,
        })
    }
}

/// The `postgresql` trigger.
pub struct PostgresScaler {
    id: TriggerId,
    name: String,
    target: Target,
    config: PostgresConfig,
    errors: ErrorContext,
    client: Mutex<Option<tokio_postgres::Client>>,
}

impl std::fmt::Debug for PostgresScaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresScaler")
            .field("id", &self.id)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl PostgresScaler {
    /// Parses the trigger; connects on first use.
    pub fn new(p: &TriggerParams) -> Result<Self, ParamError> {
        let config = PostgresConfig::parse(p)?;
        let mut secrets = p.secrets();
        secrets.push(config.connection.clone());
        Ok(PostgresScaler {
            id: p.id.clone(),
            name: external_name(p)?,
            target: Target::of(p, config.target_query_value)?,
            errors: ErrorContext::new(p.id.clone(), &config.address, secrets),
            config,
            client: Mutex::new(None),
        })
    }

    fn map(&self, e: &tokio_postgres::Error) -> ScalerError {
        use tokio_postgres::error::SqlState;
        let text = crate::http::error_chain(e);
        match e.code() {
            Some(c)
                if *c == SqlState::INVALID_PASSWORD
                    || *c == SqlState::INVALID_AUTHORIZATION_SPECIFICATION =>
            {
                self.errors.unauthorized(text)
            }
            Some(c) if *c == SqlState::INVALID_CATALOG_NAME => self.errors.not_found(text),
            Some(_) => self.errors.query(text),
            None if e.is_closed()
                || text.contains("error connecting")
                || text.contains("connection") =>
            {
                self.errors.unreachable(text)
            }
            None => self.errors.query(text),
        }
    }

    async fn value(&self) -> Result<f64, ScalerError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(tokio_postgres::Client::is_closed) {
            let (client, conn) = tokio::time::timeout(
                TIMEOUT,
                tokio_postgres::connect(self.config.connection.expose(), tokio_postgres::NoTls),
            )
            .await
            .map_err(|_| self.errors.unreachable("connect timed out"))?
            .map_err(|e| self.map(&e))?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            *guard = Some(client);
        }
        let Some(client) = guard.as_ref() else {
            return Err(self.errors.unreachable("no connection"));
        };
        let rows = tokio::time::timeout(TIMEOUT, client.simple_query(&self.config.query))
            .await
            .map_err(|_| self.errors.unreachable("query timed out"))?
            .map_err(|e| self.map(&e))?;
        let row = rows
            .iter()
            .find_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .ok_or_else(|| self.errors.bad_response("the query returned no row"))?;
        let text = row
            .get(0)
            .ok_or_else(|| self.errors.bad_response("the first column is NULL"))?;
        text.trim().parse::<f64>().map_err(|_| {
            self.errors
                .bad_response(format!("the first column, {text:?}, is not a number"))
        })
    }
}

#[async_trait::async_trait]
impl Scaler for PostgresScaler {
    fn id(&self) -> &TriggerId {
        &self.id
    }

    async fn metric_specs(&self) -> Result<Vec<MetricSpec>, ScalerError> {
        Ok(vec![MetricSpec::External {
            name: self.name.clone(),
            target: self.target,
        }])
    }

    async fn measure(
        &self,
        _metric: &str,
        _now: jiff::Timestamp,
    ) -> Result<Measurement, ScalerError> {
        let v = self.value().await?;
        Ok(plain_measurement(
            &self.name,
            v,
            self.config.activation_target_query_value,
        ))
    }

    async fn close(&self) {
        self.client.lock().await.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)], auth: &[(&str, &str)]) -> TriggerParams {
        let md = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let mut a = crate::auth::ResolvedAuth::default();
        for (k, v) in auth {
            a.params.insert((*k).to_owned(), Secret::from(*v));
        }
        TriggerParams::new("postgresql", 0, &md).with_auth(a)
    }

    #[test]
    fn connection_from_parts_and_validation() {
        let c = PostgresConfig::parse(&params(
            &[("query", "select 1"), ("targetQueryValue", "2")],
            &[
                ("host", "db"),
                ("port", "5432"),
                ("userName", "u"),
                ("dbName", "app"),
                ("sslmode", "disable"),
                ("password", "canary-pg"),
            ],
        ))
        .unwrap();
        assert_eq!(c.address, "postgres://db:5432/app");
        assert!(!format!("{c:?}").contains("canary-pg"));
        let e = PostgresConfig::parse(&params(
            &[("query", "select 1")],
            &[("connection", "host=db")],
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "postgresql trigger 0: missing required parameter targetQueryValue"
        );
        let e = PostgresConfig::parse(&params(
            &[("query", "q"), ("targetQueryValue", "1")],
            &[("host", "db")],
        ))
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "postgresql trigger 0: missing required parameter port"
        );
    }
}
