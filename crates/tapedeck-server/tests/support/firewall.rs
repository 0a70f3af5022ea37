//! nftables rules a test puts between a browser and the server (root, as
//! CI runs; scripts/setup.sh --test installs nftables). Each lives in its
//! own table, deleted when the rule is dropped.

use std::process::Command;

/// A table of rules dropping UDP while it lives.
pub struct Cut {
    table: String,
}

impl Cut {
    /// Every packet to and from the server's media ports (UDP `port`, and
    /// its ICE-TCP port if any): a network path that drops entirely.
    pub fn media(port: u16, tcp: Option<u16>) -> Self {
        let mut rules = format!("udp dport {port} drop\nudp sport {port} drop");
        if let Some(t) = tcp {
            rules.push_str(&format!("\ntcp dport {t} drop\ntcp sport {t} drop"));
        }
        Self::with(&format!("tapedeck_test_cut_{port}"), &rules)
    }

    /// A network that blocks UDP to the server's `port`, except what comes
    /// from `relay` (a TURN server's relay ports, `lo-hi`): a participant
    /// reaches it over TCP, or through the relay.
    pub fn udp_to(port: u16, relay: Option<&str>) -> Self {
        let except = relay
            .map(|r| format!(" udp sport != {r}"))
            .unwrap_or_default();
        Self::with(
            &format!("tapedeck_test_block_{port}"),
            &format!("udp dport {port}{except} drop"),
        )
    }

    /// An empty table `table` with an input chain, for a page script to
    /// add its rule to (it knows its own port).
    pub fn table(table: &str) -> Self {
        Self::with(table, "")
    }

    fn with(table: &str, rules: &str) -> Self {
        let mut script = format!(
            "add table inet {table}\n\
             add chain inet {table} input {{ type filter hook input priority 0; }}\n"
        );
        for rule in rules.lines() {
            script.push_str(&format!("add rule inet {table} input {rule}\n"));
        }
        nft(&["-f", "-"], Some(&script));
        Self {
            table: table.to_string(),
        }
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        nft(&["delete", "table", "inet", &self.table], None);
    }
}

fn nft(args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut child = Command::new("nft")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("nft (scripts/setup.sh --test installs nftables)");
    if let Some(s) = stdin {
        child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
    }
    drop(child.stdin.take());
    assert!(child.wait().unwrap().success(), "nft {args:?}");
}
