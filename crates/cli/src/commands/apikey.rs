//! `c360 apikey`: create (printed once, stored hashed), list, revoke; each change audited.

use anyhow::{Context, Result};
use c360_server::auth;
use clap::Subcommand;

use super::{api_err, audited};
use crate::config::Settings;

#[derive(Subcommand, Debug)]
pub enum ApikeyCmd {
    /// Create a key and print it (only its hash is kept).
    Create {
        /// A name to recognise (and revoke) the key by.
        #[arg(long)]
        name: String,
        /// admin, analyst or store_manager.
        #[arg(long, default_value = "analyst")]
        role: String,
        /// Store ids a store_manager may see, comma-separated.
        #[arg(long, value_delimiter = ',')]
        stores: Vec<i64>,
    },
    /// List key names and roles.
    List,
    /// Revoke every key with this name.
    Revoke {
        #[arg(long)]
        name: String,
    },
}

pub async fn run(s: &Settings, cmd: ApikeyCmd) -> Result<()> {
    let db = super::metastore(s).await?;
    let who = s.actor();
    match cmd {
        ApikeyCmd::Create { name, role, stores } => {
            let r = auth::Role::parse(&role)
                .with_context(|| format!("--role {role:?}: use admin, analyst or store_manager"))?;
            let key = auth::create_key(&db, &name, r, &stores)
                .await
                .map_err(api_err)?;
            let detail = serde_json::json!({"role": role, "stores": stores});
            audited(
                &db,
                &who,
                "apikey.create",
                &name,
                detail,
                Ok::<(), String>(()),
            )
            .await?;
            println!("{key}");
        }
        ApikeyCmd::List => {
            for (name, role, stores, revoked) in auth::list_keys(&db).await.map_err(api_err)? {
                println!(
                    "{name}\t{role}\t{stores}\t{}",
                    if revoked { "revoked" } else { "active" }
                );
            }
        }
        ApikeyCmd::Revoke { name } => {
            let n = auth::revoke_key(&db, &name).await.map_err(api_err)?;
            let detail = serde_json::json!({"revoked": n});
            audited(
                &db,
                &who,
                "apikey.revoke",
                &name,
                detail,
                Ok::<(), String>(()),
            )
            .await?;
            println!("revoked {n} key(s) named {name}");
        }
    }
    Ok(())
}
