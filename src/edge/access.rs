//! Who may become a user: a user's `allow_from` and `auth_methods` from
//! `[[users]]`. A refusal is answered exactly like a wrong password; only the
//! WARN line and `ACL LOG` say which rule refused.

use std::net::IpAddr;

use super::SourceList;

/// How a connection authenticates as a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// A verified client certificate that names the user.
    Cert,
    /// `AUTH`/`HELLO AUTH` with a password, or the `nopass` default user a
    /// connection starts as.
    Password,
    /// `AUTH`/`HELLO AUTH` with a token (`[auth.token]`).
    Token,
}

impl AuthMethod {
    /// The name used in `auth_methods`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Cert => "cert",
            AuthMethod::Password => "password",
            AuthMethod::Token => "token",
        }
    }

    /// The method called `name` in `auth_methods`.
    pub fn from_name(name: &str) -> Option<AuthMethod> {
        [AuthMethod::Cert, AuthMethod::Password, AuthMethod::Token]
            .into_iter()
            .find(|m| m.as_str() == name)
    }
}

/// A set of [`AuthMethod`]s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthMethods {
    cert: bool,
    password: bool,
    token: bool,
}

impl AuthMethods {
    /// Every method (no `auth_methods` given).
    pub const ALL: AuthMethods = AuthMethods {
        cert: true,
        password: true,
        token: true,
    };

    /// No method.
    pub const NONE: AuthMethods = AuthMethods {
        cert: false,
        password: false,
        token: false,
    };

    /// The set with `method` added.
    #[must_use]
    pub fn with(mut self, method: AuthMethod) -> AuthMethods {
        match method {
            AuthMethod::Cert => self.cert = true,
            AuthMethod::Password => self.password = true,
            AuthMethod::Token => self.token = true,
        }
        self
    }

    /// True when `method` is in the set.
    pub fn contains(self, method: AuthMethod) -> bool {
        match method {
            AuthMethod::Cert => self.cert,
            AuthMethod::Password => self.password,
            AuthMethod::Token => self.token,
        }
    }
}

impl Default for AuthMethods {
    fn default() -> Self {
        AuthMethods::ALL
    }
}

/// The rule that refused a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessRule {
    /// The peer is outside the user's `allow_from`.
    AllowFrom,
    /// The method is not in the user's `auth_methods`.
    AuthMethods,
}

impl AccessRule {
    /// The setting's name, for the WARN line and `ACL LOG`.
    pub fn as_str(self) -> &'static str {
        match self {
            AccessRule::AllowFrom => "allow_from",
            AccessRule::AuthMethods => "auth_methods",
        }
    }
}

/// A user's access settings (not ACL rules: `ACL LIST` never shows them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Access {
    /// `allow_from`; `None` = from anywhere.
    pub allow_from: Option<SourceList>,
    /// `auth_methods`; every method by default.
    pub methods: AuthMethods,
}

impl Access {
    /// The rule that refuses `peer` becoming this user by `method`, if any
    /// (the address is checked first).
    pub fn refuses(&self, peer: IpAddr, method: AuthMethod) -> Option<AccessRule> {
        if self.allow_from.as_ref().is_some_and(|l| !l.contains(peer)) {
            Some(AccessRule::AllowFrom)
        } else if !self.methods.contains(method) {
            Some(AccessRule::AuthMethods)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_name_their_rule() {
        let access = Access {
            allow_from: Some(SourceList::parse(&["127.0.0.2".to_owned()]).expect("valid")),
            methods: AuthMethods::NONE.with(AuthMethod::Cert),
        };
        let (two, one) = ("127.0.0.2".parse().unwrap(), "127.0.0.1".parse().unwrap());
        assert_eq!(access.refuses(two, AuthMethod::Cert), None);
        assert_eq!(
            access.refuses(two, AuthMethod::Password),
            Some(AccessRule::AuthMethods)
        );
        assert_eq!(
            access.refuses(one, AuthMethod::Cert),
            Some(AccessRule::AllowFrom)
        );
        assert_eq!(
            access.refuses(one, AuthMethod::Token),
            Some(AccessRule::AllowFrom)
        );
        assert_eq!(Access::default().refuses(one, AuthMethod::Token), None);
        for m in [AuthMethod::Cert, AuthMethod::Password, AuthMethod::Token] {
            assert_eq!(AuthMethod::from_name(m.as_str()), Some(m));
        }
        assert_eq!(AuthMethod::from_name("Cert"), None);
    }
}
