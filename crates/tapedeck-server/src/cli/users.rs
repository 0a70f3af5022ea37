//! `tapedeck users`: the web page's local accounts, on the database directly.

use std::io::{BufRead, IsTerminal};
use std::path::Path;

use tapedeck_store::accounts::User;

use super::{UsersCmd, load_config, repo};

/// Runs one account command.
pub async fn run(file: Option<&Path>, cmd: UsersCmd) -> Result<(), String> {
    match cmd {
        UsersCmd::Create {
            name,
            admin,
            data_dir,
        } => {
            if !crate::http::auth::valid_user_name(&name) {
                return Err("user names are 1-64 characters: letters, digits, - _ . @".into());
            }
            let r = repo(&load_config(file, data_dir)?).await?;
            if r.user(&name).await.map_err(|e| e.to_string())?.is_some() {
                return Err(format!(
                    "{name} exists; set its password with `tapedeck users passwd {name}`"
                ));
            }
            let user = User {
                password_hash: new_password_hash()?,
                name,
                admin,
                created_at: crate::now_ms(),
            };
            if !r.put_user(&user, false).await.map_err(|e| e.to_string())? {
                return Err(format!("{} exists", user.name));
            }
            println!(
                "created {}{}; sign in on the web page",
                user.name,
                if admin { " (admin)" } else { "" }
            );
            Ok(())
        }
        UsersCmd::Passwd { name, data_dir } => {
            let r = repo(&load_config(file, data_dir)?).await?;
            let Some(mut user) = r.user(&name).await.map_err(|e| e.to_string())? else {
                return Err(format!(
                    "no user {name} (create it: tapedeck users create {name})"
                ));
            };
            user.password_hash = new_password_hash()?;
            r.put_user(&user, true).await.map_err(|e| e.to_string())?;
            let n = r.end_sessions_of(&name).await.map_err(|e| e.to_string())?;
            println!("password of {name} changed; {n} signed-in browsers signed out");
            Ok(())
        }
        UsersCmd::List { data_dir } => {
            let r = repo(&load_config(file, data_dir)?).await?;
            for u in r.users().await.map_err(|e| e.to_string())? {
                println!(
                    "{} admin={} created={}",
                    u.name,
                    u.admin,
                    tapedeck_core::recording::time_ms::format(u.created_at)
                );
            }
            Ok(())
        }
        UsersCmd::Delete { name, data_dir } => {
            let r = repo(&load_config(file, data_dir)?).await?;
            if r.delete_user(&name).await.map_err(|e| e.to_string())? {
                println!(
                    "deleted {name}: its sessions ended and its API keys revoked (its recordings stay)"
                );
                Ok(())
            } else {
                Err(format!("no user {name}"))
            }
        }
    }
}

/// Asks for a password (twice on a terminal; one line of standard input
/// otherwise) and hashes it.
fn new_password_hash() -> Result<String, String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        crate::http::session::check_password(&first)?;
        let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the two passwords differ".into());
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| format!("reading the password from standard input: {e}"))?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    crate::http::session::hash_password(&password)
}
