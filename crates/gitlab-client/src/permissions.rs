//! Token scopes and roles as GitLab checks them for the calls glrunner makes, in one place.
//!
//! # Scopes
//!
//! GitLab accepts a token on a route when the token has *any* scope registered for that route
//! (`AccessTokenValidationService#include_any_scope?`, app/services/access_token_validation_service.rb).
//! A route's registered scopes are its endpoint class's plus `API::API`'s, "since these are meant
//! to apply to all API routes" (`scopes_registered_for_endpoint`, lib/api/api_guard.rb).
//! `API::API` registers `api` for every route and `read_api` for GET and HEAD
//! (`allow_access_with_scope :api` / `:read_api, if: get? || head?`, lib/api/api.rb).
//! `API::UserRunners` only *adds* `create_runner` for its POST
//! (`allow_access_with_scope :create_runner, if: ->(request) { request.post? }`,
//! lib/api/user_runners.rb line 7; gitlab-org/gitlab#413040, MR !124074; the scope exists from
//! GitLab 16.1), so `api` alone creates runners on every version that has `POST /user/runners`
//! (15.10+), and `create_runner` alone creates runners and nothing else.
//!
//! glrunner also creates projects, commits and pipelines, which only `api` allows: `api` is the
//! one scope it needs ([`missing_scopes`]).
//!
//! # Roles
//!
//! Creating a project runner needs `:create_runners` on the project
//! (`ProjectRunnerStrategy#authorized_user?`,
//! app/services/ci/runners/runner_creation_strategies/project_runner_strategy.rb), which
//! Maintainers and Owners have, and administrators too without being members
//! (`rule { owner | admin }.enable :owner_access`, app/policies/project_policy.rb). An
//! administrator acts as one only when the instance has Admin Mode off or the token has the
//! `admin_mode` scope (`bypass_session_for_admin_mode?`, lib/api/api_guard.rb).
//! [`runner_creation_role`] decides from `GET /user`'s `is_admin`, the token's scopes and the
//! membership.

use crate::types::{User, access_level};

/// GitLab's token scope names that matter here.
pub mod scope {
    /// Full API access: every route.
    pub const API: &str = "api";
    /// Read-only API access: GET and HEAD routes.
    pub const READ_API: &str = "read_api";
    /// `GET /user`, `GET /version` (GET and HEAD of `API::Users`, `API::Version`).
    pub const READ_USER: &str = "read_user";
    /// `POST /user/runners` only (GitLab 16.1+).
    pub const CREATE_RUNNER: &str = "create_runner";
    /// Lets an administrator's token act as administrator when Admin Mode is on.
    pub const ADMIN_MODE: &str = "admin_mode";
}

fn has(scopes: &[String], wanted: &str) -> bool {
    scopes.iter().any(|s| s == wanted)
}

/// Whether a token with these scopes may call `POST /user/runners`: `api` or `create_runner`.
pub fn scopes_allow_runner_creation(scopes: &[String]) -> bool {
    has(scopes, scope::API) || has(scopes, scope::CREATE_RUNNER)
}

/// Whether a token with these scopes may make every call glrunner makes (projects, commits,
/// pipelines, runners): only `api` allows the writes besides runner creation.
pub fn scopes_allow_glrunner(scopes: &[String]) -> bool {
    has(scopes, scope::API)
}

/// The scopes a token lacks for glrunner: `["api"]` without it, else none (`create_runner` is
/// neither needed beside `api` nor enough without it).
pub fn missing_scopes(scopes: &[String]) -> Vec<&'static str> {
    if scopes_allow_glrunner(scopes) {
        Vec::new()
    } else {
        vec![scope::API]
    }
}

/// Whether the token's user may create project runners where glrunner creates them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleVerdict {
    /// A member with at least the Maintainer role (the level is the member's).
    Member(u32),
    /// An instance administrator whose token acts as one (it has `admin_mode`, which works
    /// with Admin Mode on or off): no membership needed.
    Admin,
    /// An administrator whose token lacks `admin_mode`: allowed when the instance has Admin
    /// Mode off (an instance setting an administrator turns on), refused when it is on. The
    /// API does not tell a token that is not acting as administrator which it is.
    AdminUnlessAdminMode,
    /// Not an administrator, and a member below Maintainer (`Some(level)`) or not a member.
    Denied(Option<u32>),
}

impl RoleVerdict {
    /// True unless [`RoleVerdict::Denied`]; [`RoleVerdict::AdminUnlessAdminMode`] counts as
    /// allowed (Admin Mode is off unless an administrator turned it on); callers may warn about it.
    pub fn allowed(self) -> bool {
        !matches!(self, RoleVerdict::Denied(_))
    }

    /// What the verdict rests on, for a human ("Maintainer", "an administrator", ...).
    pub fn describe(self) -> String {
        match self {
            RoleVerdict::Member(level) => access_level::name(level).to_owned(),
            RoleVerdict::Admin => "an administrator (token with admin_mode)".to_owned(),
            RoleVerdict::AdminUnlessAdminMode => {
                "an administrator (the token has no admin_mode scope: refused if the instance has Admin Mode on)"
                    .to_owned()
            }
            RoleVerdict::Denied(Some(level)) => access_level::name(level).to_owned(),
            RoleVerdict::Denied(None) => "not a member".to_owned(),
        }
    }
}

/// The role check for project runners: Maintainer or Owner on the project (or the group a new
/// project is created in), or an instance administrator, member or not.
///
/// `user` is `GET /user` (whose `is_admin` GitLab shows only to administrators), `token_scopes`
/// the token's scopes (empty when unknown), `access_level` the effective membership
/// (`GET .../members/all/:user_id`, `None` for a 404).
pub fn runner_creation_role(
    user: &User,
    token_scopes: &[String],
    access_level: Option<u32>,
) -> RoleVerdict {
    match access_level {
        Some(level) if level >= access_level::MAINTAINER => RoleVerdict::Member(level),
        _ if user.is_admin && has(token_scopes, scope::ADMIN_MODE) => RoleVerdict::Admin,
        _ if user.is_admin => RoleVerdict::AdminUnlessAdminMode,
        other => RoleVerdict::Denied(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn api_alone_is_enough_and_create_runner_alone_only_creates_runners() {
        assert!(scopes_allow_runner_creation(&scopes(&["api"])));
        assert!(scopes_allow_runner_creation(&scopes(&["create_runner"])));
        assert!(!scopes_allow_runner_creation(&scopes(&[
            "read_api",
            "read_user"
        ])));
        assert!(scopes_allow_glrunner(&scopes(&["api"])));
        assert!(!scopes_allow_glrunner(&scopes(&[
            "create_runner",
            "read_api"
        ])));
        assert!(missing_scopes(&scopes(&["api"])).is_empty());
        assert_eq!(missing_scopes(&scopes(&["create_runner"])), vec!["api"]);
        assert_eq!(missing_scopes(&[]), vec!["api"]);
    }

    #[test]
    fn an_administrator_needs_no_membership() {
        let user = |is_admin| User {
            id: 1,
            username: "u".into(),
            name: String::new(),
            is_admin,
        };
        let none: [String; 0] = [];
        assert_eq!(
            runner_creation_role(&user(false), &none, Some(access_level::MAINTAINER)),
            RoleVerdict::Member(access_level::MAINTAINER)
        );
        assert_eq!(
            runner_creation_role(&user(false), &none, Some(access_level::DEVELOPER)),
            RoleVerdict::Denied(Some(access_level::DEVELOPER))
        );
        assert_eq!(
            runner_creation_role(&user(false), &none, None),
            RoleVerdict::Denied(None)
        );
        assert!(!runner_creation_role(&user(false), &none, None).allowed());
        let admin = runner_creation_role(&user(true), &scopes(&["api"]), None);
        assert_eq!(admin, RoleVerdict::AdminUnlessAdminMode);
        assert!(admin.allowed() && admin.describe().contains("Admin Mode"));
        assert_eq!(
            runner_creation_role(&user(true), &scopes(&["api", "admin_mode"]), None),
            RoleVerdict::Admin
        );
    }
}
