//! The in-memory GitLab's record of runner creations and deletions and of pipeline creations,
//! in order: what a test reads to find two runners with one description alive at once, or a
//! pipeline started on a ref while another one still ran there (GitLab allows both; glrunner
//! must never cause them).

use super::{InMemoryGitLab, State};
use crate::types::{NewRunner, Pipeline};

/// One change to the instance, as [`InMemoryGitLab::history`] lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `POST /user/runners` created a runner.
    RunnerCreated {
        /// The new runner's id.
        runner_id: u64,
        /// The project it serves.
        project_id: u64,
        /// Its description.
        description: String,
    },
    /// A runner was deleted (`DELETE /runners/:id`, or with its project).
    RunnerDeleted {
        /// The runner's id.
        runner_id: u64,
    },
    /// A pipeline was created (`POST /pipeline`, or a push).
    PipelineCreated {
        /// The new pipeline's id.
        pipeline_id: u64,
        /// Its project.
        project_id: u64,
        /// Its ref.
        ref_name: String,
        /// `api` or `push`.
        source: String,
        /// The pipelines of the same ref that were not finished at that moment.
        unfinished_on_ref: Vec<u64>,
    },
}

impl InMemoryGitLab {
    /// Every runner created and deleted and every pipeline created so far, oldest first.
    pub fn history(&self) -> Vec<Event> {
        self.lock().history.clone()
    }
}

impl State {
    pub(super) fn record_runner_created(&mut self, runner_id: u64, new: &NewRunner) {
        self.history.push(Event::RunnerCreated {
            runner_id,
            project_id: new.project_id,
            description: new.description.clone(),
        });
    }

    pub(super) fn record_runner_deleted(&mut self, runner_id: u64) {
        self.history.push(Event::RunnerDeleted { runner_id });
    }

    /// Before a project's deletion removes its runners.
    pub(super) fn record_project_runners_deleted(&mut self, project_id: u64) {
        let gone: Vec<u64> = self
            .runners
            .iter()
            .filter(|(_, r)| r.project_id == project_id)
            .map(|(id, _)| *id)
            .collect();
        for runner_id in gone {
            self.record_runner_deleted(runner_id);
        }
    }

    /// Before `pipeline` joins the others.
    pub(super) fn record_pipeline_created(&mut self, pipeline: &Pipeline) {
        let unfinished_on_ref = self
            .pipelines
            .values()
            .filter(|p| {
                p.project_id == pipeline.project_id
                    && p.ref_name == pipeline.ref_name
                    && !p.status.is_finished()
            })
            .map(|p| p.id)
            .collect();
        self.history.push(Event::PipelineCreated {
            pipeline_id: pipeline.id,
            project_id: pipeline.project_id,
            ref_name: pipeline.ref_name.clone(),
            source: pipeline.source.clone().unwrap_or_default(),
            unfinished_on_ref,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{GitLabApi, GitLabApiExt};
    use crate::types::{NewPipeline, ProjectRef};

    #[tokio::test]
    async fn runner_creations_and_deletions_are_recorded_in_order() {
        let gl = InMemoryGitLab::default();
        let p = gl.get_or_create_project("history").await.unwrap();
        let new = |d: &str| NewRunner::project(p.id, d, vec!["t".into()]);
        let a = gl.create_runner(&new("a")).await.unwrap().id;
        gl.delete_runner(a).await.unwrap();
        let b = gl.create_runner(&new("a")).await.unwrap().id;
        assert!(gl.delete_runner(a).await.is_err(), "already gone");
        gl.delete_project(&ProjectRef::Id(p.id)).await.unwrap();
        let created = |runner_id| Event::RunnerCreated {
            runner_id,
            project_id: p.id,
            description: "a".into(),
        };
        assert_eq!(
            gl.history(),
            [
                created(a),
                Event::RunnerDeleted { runner_id: a },
                created(b),
                Event::RunnerDeleted { runner_id: b },
            ]
        );
    }

    #[tokio::test]
    async fn a_pipeline_records_what_still_ran_on_its_ref() {
        let gl = InMemoryGitLab::default();
        let p = gl.get_or_create_project("history").await.unwrap();
        let pref = ProjectRef::Id(p.id);
        let ci = "job:\n  script: [echo]\n";
        let push = gl
            .put_file(&pref, "main", ".gitlab-ci.yml", ci, "ci")
            .await
            .unwrap();
        let first = gl
            .create_pipeline(&pref, &NewPipeline::new("main"))
            .await
            .unwrap();
        gl.cancel_pipeline(&pref, first.id).await.unwrap();
        let second = gl
            .create_pipeline(&pref, &NewPipeline::new("main"))
            .await
            .unwrap();
        let created: Vec<(u64, String, Vec<u64>)> = gl
            .history()
            .into_iter()
            .filter_map(|e| match e {
                Event::PipelineCreated {
                    pipeline_id,
                    source,
                    unfinished_on_ref,
                    ..
                } => Some((pipeline_id, source, unfinished_on_ref)),
                _ => None,
            })
            .collect();
        let push_id = created[0].0;
        assert_eq!(created.len(), 3, "{created:?} after {push:?}");
        assert_eq!(created[0], (push_id, "push".into(), vec![]));
        // The push pipeline still ran when the first API pipeline started; the canceled one
        // had finished when the second started.
        assert_eq!(created[1], (first.id, "api".into(), vec![push_id]));
        assert_eq!(created[2], (second.id, "api".into(), vec![push_id]));
    }
}
