//! Phase 2, project: get or create the GitLab project.

use glrunner_gitlab_client::{GitLabApiExt, Project, ProjectRef};

use super::{Error, Phase, Run, at};

impl Run<'_> {
    /// The project: created when `create` (the project phase), else it must exist.
    pub(super) async fn project(&mut self, create: bool) -> Result<Project, Error> {
        if let Some(p) = &self.project {
            return Ok(p.clone());
        }
        let gitlab = &self.backends.gitlab;
        let project = if create {
            gitlab
                .get_or_create_project(&self.config.project)
                .await
                .map_err(at(Phase::Project))?
        } else {
            let r = ProjectRef::parse(&self.config.project).map_err(at(Phase::Project))?;
            gitlab.get_project(&r).await.map_err(at(Phase::Project))?
        };
        self.project = Some(project.clone());
        Ok(project)
    }
}
