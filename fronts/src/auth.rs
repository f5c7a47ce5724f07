//! Bearer tokens: an admin token for the management API and an optional,
//! weaker inference token, and the [`Access`] each route and method needs.
//!
//! Handlers never check tokens themselves: the HTTP front's route table
//! (`http::routes`) and the gRPC front's method table (`grpc::access`) give
//! every route and method an [`Access`], and one layer per front calls
//! [`Tokens::admit`] before the handler runs.
//!
//! The admin token comes from `--admin-token`, or from `--admin-token-file`,
//! which is generated with 32 random bytes and mode 0600 at first start.
//! Comparisons are constant-time. The admin token is accepted for inference
//! too; the inference token never for management.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result};
use subtle::ConstantTimeEq;

use maas_serving::error::{ServeError, ServeResult};

/// What a route or gRPC method asks of its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone: health, metadata, metrics.
    Open,
    /// The inference token, when one is set (else anyone), or the admin token.
    Inference,
    /// The admin token.
    Admin,
}

/// The tokens this coordinator accepts.
pub struct Tokens {
    admin: String,
    inference: Option<String>,
}

impl Tokens {
    /// The admin token `admin`, or else the one in `admin_file` (generated
    /// there at first start), and the optional `inference` token.
    pub fn load(admin: Option<&str>, admin_file: &Path, inference: Option<&str>) -> Result<Tokens> {
        let admin = match admin {
            Some(token) => token.to_string(),
            None => read_or_generate(admin_file)?,
        };
        anyhow::ensure!(admin.len() >= 16, "the admin token must have at least 16 characters");
        Ok(Tokens { admin, inference: inference.map(str::to_string) })
    }

    /// Admits `token` (from `Authorization: Bearer <token>`) to something
    /// that needs `access`.
    pub fn admit(&self, access: Access, token: Option<&str>) -> ServeResult<()> {
        match access {
            Access::Open => Ok(()),
            Access::Inference => self.check_inference(token),
            Access::Admin => self.check_admin(token),
        }
    }

    /// Admits `token` if it is the admin token.
    fn check_admin(&self, token: Option<&str>) -> ServeResult<()> {
        match token {
            Some(token) if equal(token, &self.admin) => Ok(()),
            Some(_) => Err(ServeError::Unauthorized("the bearer token is not the admin token".into())),
            None => Err(ServeError::Unauthorized(
                "this route needs the admin token: send 'Authorization: Bearer <token>'".into(),
            )),
        }
    }

    /// Admits `token` if it is the inference or admin token, or anything
    /// when no inference token is set.
    fn check_inference(&self, token: Option<&str>) -> ServeResult<()> {
        let Some(expected) = &self.inference else { return Ok(()) };
        match token {
            Some(token) if equal(token, expected) || equal(token, &self.admin) => Ok(()),
            _ => Err(ServeError::Unauthorized("inference needs a token: send 'Authorization: Bearer <token>'".into())),
        }
    }
}

/// The token of an `Authorization: Bearer <token>` value (an HTTP header
/// or gRPC metadata).
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once([' ', '\t'])?;
    // The scheme is case-insensitive (RFC 7235).
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn equal(given: &str, expected: &str) -> bool {
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bearer_scheme_is_read_as_rfc_7235_says() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER\tabc "), Some("abc"));
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("abc"), None);
    }
}
