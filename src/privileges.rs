//! The user Portico serves as: looked up once when the config is read, switched to once
//! the listening sockets are bound, the way lighttpd's `server.username` and Apache's
//! `User` work. Started as root, Portico binds port 80 and then runs everything else
//! (scripts, launched workers, their sockets) as that user. It owns nothing else: what a
//! script may do once started is `cgi::spawn`'s concern.

use std::ffi::CString;

use nix::unistd::{Gid, Group, Uid, User, getegid, geteuid, initgroups, setgid, setuid};

/// The user and group to serve as, resolved from their names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunAs {
    pub user: String,
    pub uid: u32,
    pub gid: u32,
}

/// Why a `user` or `group` setting cannot be used; only `NoSuchGroup` is about `group`.
#[derive(Debug, PartialEq, Eq)]
pub enum RunAsError {
    NoSuchUser(String),
    NoSuchGroup(String),
    /// Only root may switch to another user.
    NotRoot(String),
}

impl std::fmt::Display for RunAsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunAsError::NoSuchUser(name) => write!(f, "no user `{name}` on this system"),
            RunAsError::NoSuchGroup(name) => write!(f, "no group `{name}` on this system"),
            RunAsError::NotRoot(name) => write!(
                f,
                "serving as `{name}` needs Portico to start as root (it runs as uid {})",
                geteuid()
            ),
        }
    }
}

impl RunAs {
    /// Looks up `user` (a name or a numeric uid) and `group` (default: the user's own).
    pub fn resolve(user: &str, group: Option<&str>) -> Result<RunAs, RunAsError> {
        let entry = lookup_user(user).ok_or_else(|| RunAsError::NoSuchUser(user.to_owned()))?;
        let gid = match group {
            Some(name) => {
                lookup_group(name).ok_or_else(|| RunAsError::NoSuchGroup(name.to_owned()))?
            }
            None => entry.gid,
        };
        let run_as = RunAs {
            user: entry.name,
            uid: entry.uid.as_raw(),
            gid: gid.as_raw(),
        };
        if !geteuid().is_root() && !run_as.is_current() {
            return Err(RunAsError::NotRoot(user.to_owned()));
        }
        Ok(run_as)
    }

    fn is_current(&self) -> bool {
        geteuid().as_raw() == self.uid && getegid().as_raw() == self.gid
    }

    /// Switches the whole process (every thread) to this user, its supplementary groups
    /// and the group; once done, it cannot be undone. A no-op when already this user.
    pub fn switch(&self) -> nix::Result<()> {
        if self.is_current() {
            return Ok(());
        }
        let name = CString::new(self.user.as_str()).map_err(|_| nix::Error::EINVAL)?;
        // Groups before the uid: after setuid the process may no longer change them.
        initgroups(&name, Gid::from_raw(self.gid))?;
        setgid(Gid::from_raw(self.gid))?;
        setuid(Uid::from_raw(self.uid))?;
        // A process that could regain root would make the switch pointless.
        if self.uid != 0 && setuid(Uid::from_raw(0)).is_ok() {
            return Err(nix::Error::EPERM);
        }
        Ok(())
    }
}

fn lookup_user(name: &str) -> Option<User> {
    match name.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)).ok().flatten(),
        Err(_) => User::from_name(name).ok().flatten(),
    }
}

fn lookup_group(name: &str) -> Option<Gid> {
    let group = match name.parse::<u32>() {
        Ok(gid) => Group::from_gid(Gid::from_raw(gid)),
        Err(_) => Group::from_name(name),
    };
    group.ok().flatten().map(|group| group.gid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_current_user_resolves_by_name_and_by_number() {
        let me = User::from_uid(geteuid()).unwrap().unwrap();
        let by_name = RunAs::resolve(&me.name, None).unwrap();
        assert_eq!(by_name.uid, geteuid().as_raw());
        assert_eq!(by_name.gid, me.gid.as_raw());
        assert_eq!(
            RunAs::resolve(&geteuid().as_raw().to_string(), None).unwrap(),
            by_name
        );
        // Switching to whom one already is changes nothing.
        by_name.switch().unwrap();
        assert_eq!(geteuid().as_raw(), by_name.uid);
    }

    #[test]
    fn unknown_names_say_which_setting_is_wrong() {
        let me = User::from_uid(geteuid()).unwrap().unwrap();
        assert_eq!(
            RunAs::resolve("no-such-user-here", None),
            Err(RunAsError::NoSuchUser("no-such-user-here".into()))
        );
        assert_eq!(
            RunAs::resolve(&me.name, Some("no-such-group-here")),
            Err(RunAsError::NoSuchGroup("no-such-group-here".into()))
        );
    }
}
