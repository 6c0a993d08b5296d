//! Phase 6, load test: commit the CI file, run one pipeline and watch it to the end.

use glrunner_gitlab_client::ci::{LoadTestSpec, ShardTarget};
use glrunner_gitlab_client::watch::{WatchEvent, watch_pipeline};
use glrunner_gitlab_client::{GitLabApiExt, NewPipeline, ProjectRef, WatchOutcome};

use super::{Error, FlowEvent, LoadTestSummary, Phase, Run, at};

impl Run<'_> {
    /// Commits the CI file, creates one pipeline and watches it to the end.
    pub(super) async fn load_test(&mut self) -> Result<String, Error> {
        let phase = Phase::LoadTest;
        let plan = self.plan()?;
        let project = self.project(false).await?;
        let gitlab = self.backends.gitlab.clone();
        let mut spec = LoadTestSpec::new(
            plan.shards
                .iter()
                .map(|s| ShardTarget::new(&s.tag, s.jobs))
                .collect(),
        );
        if let Some(image) = &self.config.image {
            spec = spec.with_image(image);
        }
        let yaml = spec.to_yaml().map_err(at(phase))?;
        let project_ref = ProjectRef::Id(project.id);
        let branch = project
            .default_branch
            .clone()
            .unwrap_or_else(|| "main".into());
        let commit = gitlab
            .put_file(
                &project_ref,
                &branch,
                ".gitlab-ci.yml",
                &yaml,
                &format!("glrunner: load test of {} jobs", plan.total_jobs),
            )
            .await
            .map_err(at(phase))?;
        self.step(
            phase,
            format!(
                "committed .gitlab-ci.yml ({})",
                &commit.id[..commit.id.len().min(8)]
            ),
        );
        let pipeline = gitlab
            .create_pipeline(&project_ref, &NewPipeline::new(&branch))
            .await
            .map_err(at(phase))?;
        self.created.pipeline = Some(pipeline.id);
        self.step(
            phase,
            format!("pipeline {} created: {}", pipeline.id, pipeline.web_url),
        );
        let progress = self.progress;
        let mut on_event = |event: &WatchEvent| {
            if let WatchEvent::Progress(p) = event {
                progress.event(&FlowEvent::Pipeline(p));
            }
        };
        let report = watch_pipeline(
            gitlab.as_ref(),
            &project_ref,
            pipeline.id,
            &self.config.watch,
            &mut on_event,
        )
        .await
        .map_err(at(phase))?;
        let summary = LoadTestSummary::from_report(&report);
        let line = summary.one_line();
        self.report.load_test = Some(summary);
        if report.outcome != WatchOutcome::Finished {
            return Err(Error::phase(
                phase,
                format!(
                    "pipeline {} did not finish: {:?}",
                    pipeline.id, report.outcome
                ),
            ));
        }
        self.created.pipeline = None;
        if report.has_failures() || report.pipeline_status != "success" {
            return Err(Error::phase(
                phase,
                format!(
                    "pipeline {} ended {}: failures {:?}",
                    pipeline.id, report.pipeline_status, report.failures_by_reason
                ),
            ));
        }
        Ok(line)
    }
}
