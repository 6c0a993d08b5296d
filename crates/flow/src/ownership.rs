//! The names that say what a stack owns, in one place: its releases (`<stack>-runner-<i>`),
//! their token Secrets (`<release>-token`) and its GitLab runners (described `<stack>/<release>`).
//! The phases create with these names and the teardown deletes only what matches them, so a
//! rule changed here changes both.

use glrunner_infra::StackName;

/// What a stack owns outside AWS (AWS resources carry the `glrunner.io/stack` tag instead).
#[derive(Debug, Clone, Copy)]
pub struct Ownership<'a> {
    stack: &'a StackName,
}

impl<'a> Ownership<'a> {
    /// The names of `stack`'s releases, Secrets and runners.
    pub fn of(stack: &'a StackName) -> Self {
        Self { stack }
    }

    /// Release names are `<stack>-runner-<i>`: this is `<stack>-runner`.
    pub fn release_prefix(&self) -> String {
        format!("{}-runner", self.stack)
    }

    /// Whether the release `name` is one of the stack's (`<stack>-runner-…`).
    pub fn owns_release(&self, name: &str) -> bool {
        name.strip_prefix(&self.release_prefix())
            .is_some_and(|rest| rest.starts_with('-'))
    }

    /// The token Secret of `release`: `<release>-token`.
    pub fn secret_name(release: &str) -> String {
        format!("{release}-token")
    }

    /// The GitLab runner description of `release`: `<stack>/<release>`.
    pub fn runner_description(&self, release: &str) -> String {
        format!("{}/{release}", self.stack)
    }

    /// Whether a GitLab runner described `description` is one of the stack's (`<stack>/…`).
    pub fn owns_runner(&self, description: &str) -> bool {
        description
            .strip_prefix(self.stack.as_str())
            .is_some_and(|rest| rest.starts_with('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_owns_its_names_and_not_a_longer_stack_s() {
        let stack = StackName::new("ci").unwrap();
        let other = StackName::new("ci-2").unwrap();
        let mine = Ownership::of(&stack);
        let theirs = Ownership::of(&other);
        let release = format!("{}-1", mine.release_prefix());
        assert_eq!(release, "ci-runner-1");
        assert!(mine.owns_release(&release));
        assert!(!mine.owns_release("ci-runnerx-1") && !mine.owns_release("ci-runner"));
        assert!(!mine.owns_release(&format!("{}-1", theirs.release_prefix())));
        assert_eq!(Ownership::secret_name(&release), "ci-runner-1-token");
        let description = mine.runner_description(&release);
        assert_eq!(description, "ci/ci-runner-1");
        assert!(mine.owns_runner(&description));
        assert!(!mine.owns_runner(&theirs.runner_description("ci-2-runner-1")));
    }
}
