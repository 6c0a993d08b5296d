//! The in-memory account's record of what `create` made: what a test reads to find two
//! resources made for one plan step (a duplicate a re-run or a lost answer left).

use super::InMemoryCloud;
use crate::resource::Resource;

impl InMemoryCloud {
    /// Every resource `create` made so far in the account (every region), oldest first, as
    /// `create` answered it; deleted ones stay listed. Resources AWS makes by itself (the ENIs
    /// and security group of a cluster) are not.
    pub fn created(&self) -> Vec<Resource> {
        self.world.lock().expect("world").created.clone()
    }
}

#[cfg(test)]
mod tests {
    use crate::apply::Engine;
    use crate::memory::InMemoryCloud;
    use crate::provider::ClusterProvisioner;
    use crate::spec::{StackName, StackSpec};

    #[tokio::test(start_paused = true)]
    async fn every_create_is_recorded_and_stays_after_teardown() {
        let cloud = InMemoryCloud::default();
        let spec = StackSpec::new(StackName::new("rec").unwrap(), "us-east-1");
        let mut plan = crate::plan_stack(&spec, &cloud).await.unwrap();
        // The caller's access entry step is keyed by the caller (Plan::bind_caller), as apply
        // keys it.
        plan.bind_caller(&cloud.caller_arn().await.unwrap());
        Engine::new(&cloud, &cloud).apply(&plan).await.unwrap();
        Engine::new(&cloud, &cloud)
            .teardown(&spec.stack)
            .await
            .unwrap();
        let created = cloud.created();
        let mut keys: Vec<&str> = created.iter().map(|r| r.key.as_str()).collect();
        keys.sort_unstable();
        let mut planned: Vec<&str> = plan.steps.iter().map(|s| s.key.as_str()).collect();
        planned.sort_unstable();
        assert_eq!(
            keys, planned,
            "one create per step, none made by AWS itself"
        );
        assert!(cloud.all_resources().iter().all(|r| r.key.is_empty()));
    }
}
