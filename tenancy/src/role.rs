//! Roles a key carries and the actions each allows.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a key may do, within its scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything, on every model: the management API, the cluster, keys.
    Admin,
    /// Deploy, alias, split, roll back and delete versions, and view.
    Deployer,
    /// Metadata, statistics, monitoring and evaluation.
    Viewer,
    /// Inference and ground-truth feedback.
    Inference,
}

/// What a route or gRPC method does, as far as roles go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Model metadata, config, readiness and statistics: any role.
    Read,
    /// Inference and feedback.
    Infer,
    /// Monitoring, alerts, evaluation and the registry's view of a model.
    View,
    /// Registry writes: publish, alias, split, rollback, delete, upload.
    Deploy,
    /// The cluster and its keys.
    Administer,
}

impl Role {
    /// Every role, for listings and errors.
    pub const ALL: [Role; 4] = [Role::Admin, Role::Deployer, Role::Viewer, Role::Inference];

    /// Whether this role may do `action` (on a model in its scope).
    pub fn allows(self, action: Action) -> bool {
        matches!(
            (self, action),
            (Role::Admin, _)
                | (_, Action::Read)
                | (Role::Deployer, Action::View | Action::Deploy)
                | (Role::Viewer, Action::View)
                | (Role::Inference, Action::Infer)
        )
    }

    /// The role's name, as the API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Deployer => "deployer",
            Role::Viewer => "viewer",
            Role::Inference => "inference",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        Role::ALL.into_iter().find(|role| role.as_str() == text).ok_or_else(|| {
            let names: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
            format!("unknown role '{text}': use one of {}", names.join(", "))
        })
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Read => "read",
            Action::Infer => "infer",
            Action::View => "view",
            Action::Deploy => "deploy",
            Action::Administer => "administer",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_allows_exactly_its_actions() {
        use Action::*;
        let table = [
            (Role::Admin, [true, true, true, true, true]),
            (Role::Deployer, [true, false, true, true, false]),
            (Role::Viewer, [true, false, true, false, false]),
            (Role::Inference, [true, true, false, false, false]),
        ];
        for (role, expected) in table {
            let actual = [Read, Infer, View, Deploy, Administer].map(|action| role.allows(action));
            assert_eq!(actual, expected, "{role}");
        }
    }

    #[test]
    fn roles_parse_from_their_names_only() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("root".parse::<Role>().unwrap_err().contains("admin, deployer, viewer, inference"));
    }
}
