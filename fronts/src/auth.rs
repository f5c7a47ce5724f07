//! What each route and gRPC method asks of its caller ([`Access`]), and the
//! one check both fronts run before a handler: [`admit`].
//!
//! Handlers never check tokens themselves: the HTTP front's route table
//! (`http::routes`) and the gRPC front's method table (`grpc::access`) give
//! every route and method an [`Access`]; one layer per front identifies the
//! caller from its bearer token (the bootstrap admin token, the shared
//! inference token, or an API key of a tenant), admits it for the route's
//! access on the route's model, and hands the [`Caller`] to the handler,
//! which uses it only to narrow lists to the caller's scope.
//!
//! The bootstrap admin token comes from `--admin-token`, or from
//! `--admin-token-file`, which is generated with 32 random bytes and mode
//! 0600 at first start.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};

use maas_serving::error::{ServeError, ServeResult};
use maas_tenancy::{Action, Caller, Gate};

/// What a route or gRPC method asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, server metadata.
    Open,
    /// Prometheus scrapers: anyone, or with `--metrics-token` that token
    /// (or an admin's).
    Metrics,
    /// Any caller whose scope reaches the model (anyone, where inference is
    /// open): model metadata, config, readiness, statistics.
    Read,
    /// Inference and feedback: the inference or admin role.
    Infer,
    /// Monitoring, evaluation, the registry's view: viewer, deployer, admin.
    View,
    /// Registry writes: deployer or admin.
    Deploy,
    /// The cluster and keys: admin.
    Admin,
}

impl Access {
    /// The action a caller must be allowed, `None` for open routes.
    pub fn action(self) -> Option<Action> {
        match self {
            Access::Open | Access::Metrics => None,
            Access::Read => Some(Action::Read),
            Access::Infer => Some(Action::Infer),
            Access::View => Some(Action::View),
            Access::Deploy => Some(Action::Deploy),
            Access::Admin => Some(Action::Administer),
        }
    }
}

/// Identifies the caller of a request with bearer `token` and admits it to
/// `access`, on `model` when the route names one. Open routes admit anyone
/// (an unknown token there counts as no token).
pub fn admit(gate: &Gate, access: Access, token: Option<&str>, model: Option<&str>) -> ServeResult<Caller> {
    if access == Access::Metrics {
        gate.admits_scraper(token)?;
    }
    let Some(action) = access.action() else {
        return Ok(gate.identify(token).unwrap_or_else(|_| gate.anonymous()));
    };
    let caller = gate.identify(token)?;
    match caller.permit(action, model) {
        Ok(()) => Ok(caller),
        // Without a token, what is missing is a token, not a role.
        Err(_) if caller.is_anonymous() => {
            Err(ServeError::Unauthorized("this needs a key or token: send 'Authorization: Bearer <key>'".into()))
        }
        Err(refusal) => Err(refusal.into()),
    }
}

/// The largest request `caller` may send: the server's limit, or its key's
/// or tenant's when that is smaller.
pub fn body_limit(caller: &Caller, server_limit: usize) -> usize {
    let key_limit = caller.max_request_bytes();
    key_limit.map_or(server_limit, |limit| server_limit.min(usize::try_from(limit).unwrap_or(usize::MAX)))
}

pub use maas_process::bearer_token;

/// The bootstrap admin token: `given`, or else the one in `file`
/// (generated there at first start). At least 16 characters.
pub fn admin_token(given: Option<&str>, file: &Path) -> Result<String> {
    let token = match given {
        Some(token) => token.to_string(),
        None => read_or_generate(file)?,
    };
    anyhow::ensure!(token.len() >= 16, "the admin token must have at least 16 characters");
    Ok(token)
}

fn read_or_generate(path: &Path) -> Result<String> {
    if let Ok(text) = fs::read_to_string(path) {
        return Ok(text.trim().to_string());
    }
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut random = [0u8; 32];
    fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut random)).context("reading /dev/urandom")?;
    let token = hex::encode(random);
    let mut file = match fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path) {
        Ok(file) => file,
        // Another coordinator sharing the folder wrote it first.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            std::thread::sleep(std::time::Duration::from_millis(50));
            return Ok(fs::read_to_string(path)?.trim().to_string());
        }
        Err(e) => return Err(e).with_context(|| format!("creating the admin token file {}", path.display())),
    };
    file.write_all(token.as_bytes())?;
    tracing::info!(path = %path.display(), "generated an admin token");
    Ok(token)
}
