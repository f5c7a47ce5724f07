//! `maas keys create | list | revoke`: tenants' API keys.

use anyhow::Result;
use clap::Subcommand;
use maas_api::{KeyCreate, KeyInfo, KeyIssued, KeyLimits, KeyList, KeyRevoked};
use reqwest::Method;

use crate::client::Client;
use crate::limits::{describe, LimitArgs};
use crate::output::{print, table};

/// What to do with keys.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Create a key; it is printed once and cannot be shown again.
    Create {
        /// The tenant it belongs to.
        #[arg(long)]
        tenant: String,
        /// admin, deployer, viewer or inference.
        #[arg(long)]
        role: String,
        /// Model name patterns it reaches ('*' for any run of characters);
        /// repeat or separate with commas.
        #[arg(long, value_delimiter = ',', required = true)]
        scope: Vec<String>,
        #[command(flatten)]
        limits: LimitArgs,
        /// Priority of its requests that name none (1 is the highest).
        #[arg(long)]
        priority: Option<u32>,
        /// What the key is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// List live keys (never their secrets).
    List,
    /// Revoke a key by id: every coordinator refuses it within a second.
    Revoke {
        /// The key's id (the 12 hex digits after 'maas_').
        id: String,
    },
}

/// Runs a keys command.
pub async fn run(client: &Client, json: bool, command: KeysCommand) -> Result<()> {
    match command {
        KeysCommand::Create { tenant, role, scope, limits, priority, description } => {
            let limits = KeyLimits::from(limits);
            let request = KeyCreate { tenant, role, scope, limits: Some(limits), priority, description };
            let issued: KeyIssued = client.send_as(Method::POST, "/v1/keys", &request).await?;
            if json {
                print(&issued);
            } else {
                println!("{}", issued.key);
                eprintln!(
                    "key {} for tenant {} ({}, scope {}): store it now, it is not shown again",
                    issued.info.id,
                    issued.info.tenant,
                    issued.info.role,
                    issued.info.scope.join(",")
                );
            }
        }
        KeysCommand::List => {
            let list: KeyList = client.get_as("/v1/keys").await?;
            if json {
                print(&list);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = list.keys.iter().map(key_row).collect();
            table(&["ID", "TENANT", "ROLE", "SCOPE", "LIMITS", "PRIORITY", "DESCRIPTION"], &rows);
        }
        KeysCommand::Revoke { id } => {
            let revoked: KeyRevoked = client.send_empty_as(Method::DELETE, &format!("/v1/keys/{id}")).await?;
            if json {
                print(&revoked);
            } else {
                println!("key {} revoked", revoked.id);
            }
        }
    }
    Ok(())
}

fn key_row(key: &KeyInfo) -> Vec<String> {
    vec![
        key.id.clone(),
        key.tenant.clone(),
        key.role.clone(),
        key.scope.join(","),
        describe(&key.limits),
        key.priority.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        key.description.clone(),
    ]
}
