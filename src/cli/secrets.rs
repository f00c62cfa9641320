//! `nexus secrets rotate-key`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Subcommand;

use super::{open_sealed_store, print_line, read_stdin_line};
use crate::config::{GlobalOpts, env_secret};
use crate::seal::SecretsKey;

#[derive(Debug, Subcommand)]
pub enum SecretsCmd {
    /// Re-seal every stored secret with a new key, in one transaction; prints the new
    /// key's id. Stop the nodes first and start them with the new key: a node still
    /// holding the old one cannot open what was re-sealed.
    RotateKey {
        /// The new key's file: read when it exists, else created (mode 0600) with a fresh
        /// key; `-` reads the key itself from stdin. Unset: `NEXUS_NEW_SECRETS_KEY`, else
        /// a fresh key replaces the current key file once everything is re-sealed.
        #[arg(long)]
        new_key_file: Option<PathBuf>,
    },
}

pub async fn secrets(global: &GlobalOpts, cmd: SecretsCmd) -> anyhow::Result<()> {
    let SecretsCmd::RotateKey { new_key_file } = cmd;
    let (mut store, current_file) = open_sealed_store(global).await?;
    let NewKey { key, file, staged } = new_key(new_key_file, current_file.as_deref())?;
    let key_id = key.id().to_owned();
    if store.secrets_key_id().await?.as_deref() == Some(key_id.as_str()) {
        bail!("the new key is the key in use");
    }
    let resealed = match store.rotate_secrets_key(key).await {
        Ok(n) => n,
        Err(e) => {
            if let Some(staged) = &staged {
                let _ = std::fs::remove_file(staged);
            }
            return Err(e).context("nothing was re-sealed");
        }
    };
    if let (Some(staged), Some(file)) = (&staged, &file) {
        std::fs::rename(staged, file).with_context(|| {
            format!(
                "re-sealed with the new key, but could not move {} over {}: move it yourself",
                staged.display(),
                file.display()
            )
        })?;
    }
    print_line(&serde_json::json!({
        "resealed": resealed,
        "key_id": key_id,
        "key_file": file,
    }))
}

struct NewKey {
    key: SecretsKey,
    /// Where the key is kept once the rotation is done; `None`: in no file.
    file: Option<PathBuf>,
    /// Where it waits until the re-sealing commits, to be moved over `file` (the current
    /// key file) then.
    staged: Option<PathBuf>,
}

/// The new key: `--new-key-file` (`-`: stdin), else `NEXUS_NEW_SECRETS_KEY`, else a
/// fresh key to replace the current key file.
fn new_key(file: Option<PathBuf>, current: Option<&Path>) -> anyhow::Result<NewKey> {
    if let Some(file) = file {
        if file.as_os_str() == "-" {
            let text = read_stdin_line("the new key")?;
            let key = SecretsKey::parse("the new key (stdin)", text.expose())?;
            return Ok(NewKey {
                key,
                file: None,
                staged: None,
            });
        }
        let key = if file.exists() {
            SecretsKey::read_file(&file)?
        } else {
            SecretsKey::create_file(&file)?
        };
        return Ok(NewKey {
            key,
            file: Some(file),
            staged: None,
        });
    }
    if let Some(text) = env_secret("NEXUS_NEW_SECRETS_KEY") {
        let key = SecretsKey::parse("NEXUS_NEW_SECRETS_KEY", &text)?;
        return Ok(NewKey {
            key,
            file: None,
            staged: None,
        });
    }
    let Some(current) = current else {
        bail!(
            "the current key comes from NEXUS_SECRETS_KEY: give the new one by \
             --new-key-file or NEXUS_NEW_SECRETS_KEY"
        );
    };
    let mut staged = current.as_os_str().to_owned();
    staged.push(".new");
    let staged = PathBuf::from(staged);
    let key = SecretsKey::create_file(&staged)
        .context("a file left there is from an interrupted rotation (see the README)")?;
    Ok(NewKey {
        key,
        file: Some(current.to_owned()),
        staged: Some(staged),
    })
}
