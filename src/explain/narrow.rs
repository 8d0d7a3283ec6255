//! The config an explanation's server runs: the config in force, less every worker that the
//! request cannot meet. An explanation starts a server of its own, and each launched app of
//! that server starts its workers, so a config with ten apps would start ten pools of
//! workers to answer one request to one of them.
//!
//! The request's own mount stays whole. Another mount stays when it starts nothing (a CGI
//! mount, whose persistent runners are dropped so that its scripts run plain; a FastCGI
//! mount of upstreams run elsewhere), so that a local redirect to it (RFC 3875 §6.2.2)
//! is still followed. A mount that launches workers, or whose authorizer does, is left
//! out: a redirect to it is a 404, never a request that skipped its authorizer.

use crate::config::{CgiMount, Config, FastcgiMount};

/// `config` for a request that `mount` (its mount path) answers.
pub fn for_mount(config: &Config, mount: &str) -> Config {
    let mut narrowed = config.clone();
    narrowed
        .cgi
        .retain(|m| m.mount == mount || !cgi_launches(m));
    for other in narrowed.cgi.iter_mut().filter(|m| m.mount != mount) {
        other.persistent.clear();
    }
    narrowed
        .fastcgi
        .retain(|m| m.mount == mount || !fastcgi_launches(m));
    narrowed
}

fn cgi_launches(mount: &CgiMount) -> bool {
    mount.authorizer.as_deref().is_some_and(fastcgi_launches)
}

fn fastcgi_launches(mount: &FastcgiMount) -> bool {
    mount.launch.is_some() || mount.authorizer.as_deref().is_some_and(fastcgi_launches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        let path = dir.path().join("portico.toml");
        std::fs::write(&path, text).unwrap();
        let args = crate::cli::ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        crate::config::load(&args).unwrap()
    }

    fn mounts(config: &Config) -> Vec<String> {
        let cgi = config.cgi.iter().map(|m| format!("cgi {}", m.mount));
        let fastcgi = config
            .fastcgi
            .iter()
            .map(|m| format!("fastcgi {}", m.mount));
        cgi.chain(fastcgi).collect()
    }

    const FOUR_MOUNTS: &str = "\
        [[cgi]]\nmount = '/cgi-bin'\ndir = 'bin'\npersistent = { perl = ['*.pl'] }\n\
        [[cgi]]\nmount = '/plain'\ndir = 'bin'\n\
        [[fastcgi]]\nmount = '/php'\nupstreams = ['tcp:127.0.0.1:9000']\nroot = 'bin'\n\
        [[fastcgi]]\nmount = '/app'\nlaunch = { command = ['/bin/true'], workers = 3 }\n";

    #[test]
    fn a_launched_app_starts_only_for_its_own_requests() {
        let all = config(FOUR_MOUNTS);
        let for_plain = for_mount(&all, "/plain");
        assert_eq!(
            mounts(&for_plain),
            ["cgi /cgi-bin", "cgi /plain", "fastcgi /php"]
        );
        assert_eq!(for_plain.persistent_runners().count(), 0);

        let for_app = for_mount(&all, "/app");
        assert_eq!(mounts(&for_app), mounts(&all));
        assert_eq!(for_app.persistent_runners().count(), 0);
    }

    #[test]
    fn the_requests_own_mount_keeps_its_persistent_runners() {
        let all = config(FOUR_MOUNTS);
        let for_cgi = for_mount(&all, "/cgi-bin");
        assert_eq!(for_cgi.persistent_runners().count(), 1);
        assert_eq!(
            mounts(&for_cgi),
            ["cgi /cgi-bin", "cgi /plain", "fastcgi /php"]
        );
    }

    #[test]
    fn a_mount_whose_authorizer_launches_is_left_out() {
        let all = config(
            "[[cgi]]\nmount = '/cgi-bin'\ndir = 'bin'\n\
             [[cgi]]\nmount = '/guarded'\ndir = 'bin'\n\
             authorizer = { launch = { command = ['/bin/true'] } }\n",
        );
        assert_eq!(mounts(&for_mount(&all, "/cgi-bin")), ["cgi /cgi-bin"]);
        assert_eq!(mounts(&for_mount(&all, "/guarded")), mounts(&all));
    }
}
