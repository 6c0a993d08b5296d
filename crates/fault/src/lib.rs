//! Rules that inject faults into a backend's calls: the engine behind each capability crate's
//! `testing::Faulty` decorator (not API-stable).
//!
//! A capability crate describes its trait's calls once — a [`Call`] enum with one variant per
//! fallible method, and the borrowed arguments of one call — and forwards every method of its
//! trait for [`Faulty<T, C>`] through [`Faulty::run`], with clippy's `missing_trait_methods`
//! denied so that a new trait method cannot be left to a default. Tests and the sandbox's
//! fault suite then add [`Rule`]s to a decorator:
//!
//! - **by call**: [`Rule::on`] one method, or [`Rule::any`] method; [`Rule::when`] narrows a
//!   rule to calls whose arguments match (a Fargate profile's create, a VPC's delete);
//! - **by count**: [`Rule::skip`] lets the first N matching calls through, [`Rule::times`]
//!   then fails M of them (every one after the skipped ones by default);
//! - **by timing**: [`Timing::Before`] answers the error instead of calling the backend;
//!   [`Timing::AfterEffect`] calls it and, when the call succeeded, answers the error instead
//!   of its answer (the effect happened, the answer was lost: a proxy's 502 after the server
//!   acted, a crash between an AWS call and its bookkeeping). A failed call had no effect to
//!   lose, so an after-effect rule does not count it: `skip(2)` skips two effects;
//! - **an error factory** per rule, given the call's arguments so the error can name them.
//!
//! The decorator counts every call by method ([`Faulty::calls`]) and every fault it injected
//! ([`Faulty::injected`]). Rules are tried in the order they were added, when the call starts;
//! the first that matches it (its method and condition, and not spent) takes it: it counts the
//! call (an after-effect rule once the call succeeded) and answers it when past its skip and
//! within its times, and the rules after it do not see that call.
//!
//! ```
//! use glrunner_fault::{Call, Faulty, Rule};
//!
//! // A trait's calls: one variant per fallible method, and one call's arguments.
//! #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
//! enum StoreCall { Put, Get }
//! enum StoreArgs<'a> { Put { key: &'a str }, Get { key: &'a str } }
//! impl Call for StoreCall {
//!     type Args<'a> = StoreArgs<'a>;
//!     type Error = String;
//!     fn of(args: &StoreArgs<'_>) -> Self {
//!         match args { StoreArgs::Put { .. } => Self::Put, StoreArgs::Get { .. } => Self::Get }
//!     }
//! }
//!
//! // The second put answers an error after the value was stored.
//! let store = Faulty::<_, StoreCall>::new(std::collections::BTreeMap::<String, u32>::new())
//!     .with_rule(
//!         Rule::on(StoreCall::Put, |args| match args {
//!             StoreArgs::Put { key } | StoreArgs::Get { key } => format!("lost answer for {key}"),
//!         })
//!         .skip(1)
//!         .times(1)
//!         .after_effect(),
//!     );
//! # let _ = store;
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The fallible methods of one capability trait, one variant each, and how a call's arguments
/// look: what a [`Rule`] matches and [`Faulty::calls`] counts.
pub trait Call: Copy + Ord + fmt::Debug + Send + Sync + 'static {
    /// The arguments of one call, borrowed from the caller (one variant per method).
    type Args<'a>: Send;
    /// The trait's error type.
    type Error: Send + 'static;
    /// The method `args` are the arguments of.
    fn of(args: &Self::Args<'_>) -> Self;
}

/// When an injected fault answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Timing {
    /// Instead of the call: the backend never sees it.
    #[default]
    Before,
    /// After the effect: the backend handles the call and, if it succeeded, its answer is
    /// replaced by the error (the answer was lost). Failed calls go back as they are.
    AfterEffect,
}

type Condition<C> = Box<dyn for<'a> Fn(&<C as Call>::Args<'a>) -> bool + Send + Sync>;
type ErrorFactory<C> =
    Box<dyn for<'a> Fn(&<C as Call>::Args<'a>) -> <C as Call>::Error + Send + Sync>;

/// One fault: which calls it matches, how many of them it lets through and then fails, when
/// it answers, and the error it answers.
pub struct Rule<C: Call> {
    call: Option<C>,
    when: Option<Condition<C>>,
    skip: u64,
    times: Option<u64>,
    timing: Timing,
    error: ErrorFactory<C>,
    /// Matching calls seen so far (skipped ones included).
    matched: u64,
    /// Faults this rule injected.
    fired: u64,
}

impl<C: Call> fmt::Debug for Rule<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rule")
            .field("call", &self.call)
            .field("conditional", &self.when.is_some())
            .field("skip", &self.skip)
            .field("times", &self.times)
            .field("timing", &self.timing)
            .field("matched", &self.matched)
            .field("fired", &self.fired)
            .finish_non_exhaustive()
    }
}

impl<C: Call> Rule<C> {
    /// Every call of `call` answers `error(args)` (before it reaches the backend) until
    /// narrowed with [`Rule::when`], [`Rule::skip`], [`Rule::times`] or [`Rule::after_effect`].
    pub fn on(
        call: C,
        error: impl for<'a> Fn(&C::Args<'a>) -> C::Error + Send + Sync + 'static,
    ) -> Self {
        Self::new(Some(call), Box::new(error))
    }

    /// Like [`Rule::on`], for calls of every method.
    pub fn any(error: impl for<'a> Fn(&C::Args<'a>) -> C::Error + Send + Sync + 'static) -> Self {
        Self::new(None, Box::new(error))
    }

    fn new(call: Option<C>, error: ErrorFactory<C>) -> Self {
        Self {
            call,
            when: None,
            skip: 0,
            times: None,
            timing: Timing::Before,
            error,
            matched: 0,
            fired: 0,
        }
    }

    /// Only calls whose arguments satisfy `condition` match (it is asked once per call of the
    /// rule's method while the rule can still fire, in call order, so a seeded random choice
    /// in it replays).
    #[must_use]
    pub fn when(
        mut self,
        condition: impl for<'a> Fn(&C::Args<'a>) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.when = Some(Box::new(condition));
        self
    }

    /// The first `calls` matching calls go through untouched.
    #[must_use]
    pub fn skip(mut self, calls: u64) -> Self {
        self.skip = calls;
        self
    }

    /// After the skipped ones, only `faults` matching calls fail; later ones go through.
    #[must_use]
    pub fn times(mut self, faults: u64) -> Self {
        self.times = Some(faults);
        self
    }

    /// When the fault answers ([`Timing::Before`] unless set).
    #[must_use]
    pub fn timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// Shorthand for [`Rule::timing`]`(`[`Timing::AfterEffect`]`)`.
    #[must_use]
    pub fn after_effect(self) -> Self {
        self.timing(Timing::AfterEffect)
    }

    /// Whether the rule takes this call: its method, not spent, and its condition holds.
    fn takes(&self, call: C, args: &C::Args<'_>) -> bool {
        let spent = self.times.is_some_and(|t| self.fired >= t);
        !spent
            && self.call.is_none_or(|c| c == call)
            && self.when.as_ref().is_none_or(|when| when(args))
    }

    /// Counts a call the rule took (for an after-effect rule, one that succeeded); whether it
    /// fails it. A call that another one spent the rule for in the meantime goes through.
    fn count(&mut self) -> bool {
        if self.times.is_some_and(|t| self.fired >= t) {
            return false;
        }
        self.matched += 1;
        if self.matched <= self.skip {
            return false;
        }
        self.fired += 1;
        true
    }
}

/// What a decorator and the decorators [`Faulty::share`]d from it hold in common.
struct Faults<C: Call> {
    rules: Mutex<Vec<Rule<C>>>,
    calls: Mutex<BTreeMap<C, u64>>,
    injected: AtomicU64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A rule's condition or error factory that panicked leaves nothing half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A backend `T` whose calls go through fault rules. The capability crates implement their
/// traits for it (`Faulty<T, GitLabCall>` is gitlab-client's `testing::Faulty<T>`); with no
/// rule it forwards every call unchanged.
pub struct Faulty<T, C: Call> {
    inner: T,
    faults: Arc<Faults<C>>,
}

impl<T: fmt::Debug, C: Call> fmt::Debug for Faulty<T, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Faulty")
            .field("inner", &self.inner)
            .field("rules", &*lock(&self.faults.rules))
            .field("injected", &self.injected())
            .finish()
    }
}

impl<T, C: Call> Faulty<T, C> {
    /// `inner` with no rule: every call goes through.
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            faults: Arc::new(Faults {
                rules: Mutex::default(),
                calls: Mutex::default(),
                injected: AtomicU64::new(0),
            }),
        }
    }

    /// Adds `rule` (builder form of [`Faulty::inject`]).
    #[must_use]
    pub fn with_rule(self, rule: Rule<C>) -> Self {
        self.inject(rule);
        self
    }

    /// Adds `rule` after the existing ones; it applies from the next call on (arm one when a
    /// phase starts, say).
    pub fn inject(&self, rule: Rule<C>) {
        lock(&self.faults.rules).push(rule);
    }

    /// Faults injected so far.
    pub fn injected(&self) -> u64 {
        self.faults.injected.load(Ordering::SeqCst)
    }

    /// Calls of `call` so far, faulted ones included.
    pub fn calls(&self, call: C) -> u64 {
        lock(&self.faults.calls).get(&call).copied().unwrap_or(0)
    }

    /// Every method called so far with its number of calls.
    pub fn call_counts(&self) -> BTreeMap<C, u64> {
        lock(&self.faults.calls).clone()
    }

    /// The decorated backend.
    pub fn inner(&self) -> &T {
        &self.inner
    }

    /// A decorator over another backend with the same rules and counters: one set of faults
    /// across two backends that stand for one service (a network and a cluster provisioner).
    pub fn share<U>(&self, inner: U) -> Faulty<U, C> {
        Faulty {
            inner,
            faults: self.faults.clone(),
        }
    }

    /// Runs one call: counts it; the first rule that takes it answers before `call` (the
    /// backend's future, then never polled) or, after the effect, instead of `call`'s answer
    /// when it succeeded. Every trait method of the decorator goes through here.
    pub async fn run<R>(
        &self,
        args: C::Args<'_>,
        call: impl Future<Output = Result<R, C::Error>>,
    ) -> Result<R, C::Error> {
        let method = C::of(&args);
        *lock(&self.faults.calls).entry(method).or_default() += 1;
        let taken = {
            let mut rules = lock(&self.faults.rules);
            match rules.iter().position(|rule| rule.takes(method, &args)) {
                Some(index) if rules[index].timing == Timing::Before => {
                    if let Some(error) = self.count(&mut rules[index], &args) {
                        return Err(error);
                    }
                    None
                }
                taken => taken,
            }
        };
        let answer = call.await?;
        if let Some(index) = taken {
            let mut rules = lock(&self.faults.rules);
            if let Some(error) = self.count(&mut rules[index], &args) {
                return Err(error);
            }
        }
        Ok(answer)
    }

    /// Counts the call on `rule`; its error when it fails the call.
    fn count(&self, rule: &mut Rule<C>, args: &C::Args<'_>) -> Option<C::Error> {
        if !rule.count() {
            return None;
        }
        self.faults.injected.fetch_add(1, Ordering::SeqCst);
        Some((rule.error)(args))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Op {
        Put,
        Get,
    }

    enum OpArgs<'a> {
        Put { key: &'a str },
        Get { key: &'a str },
    }

    impl Call for Op {
        type Args<'a> = OpArgs<'a>;
        type Error = String;
        fn of(args: &OpArgs<'_>) -> Self {
            match args {
                OpArgs::Put { .. } => Self::Put,
                OpArgs::Get { .. } => Self::Get,
            }
        }
    }

    fn key<'a>(args: &OpArgs<'a>) -> &'a str {
        match args {
            OpArgs::Put { key } | OpArgs::Get { key } => key,
        }
    }

    /// A store whose puts count their effect; it refuses keys starting with `!`.
    #[derive(Default)]
    struct Store {
        puts: AtomicU32,
    }

    impl Store {
        /// The number of puts so far, this one included.
        async fn put(&self, key: &str) -> Result<u32, String> {
            if key.starts_with('!') {
                return Err(format!("refused {key}"));
            }
            Ok(self.puts.fetch_add(1, Ordering::SeqCst) + 1)
        }
    }

    fn put<'a>(
        f: &'a Faulty<Store, Op>,
        key: &'a str,
    ) -> impl Future<Output = Result<u32, String>> + 'a {
        f.run(OpArgs::Put { key }, f.inner().put(key))
    }

    #[tokio::test]
    async fn a_rule_fires_on_the_nth_matching_call_and_only_as_often_as_told() {
        let f = Faulty::new(Store::default()).with_rule(
            Rule::on(Op::Put, |a| format!("no {}", key(a)))
                .skip(2)
                .times(2),
        );
        let mut answers = Vec::new();
        for k in ["a", "b", "c", "d", "e"] {
            answers.push(put(&f, k).await);
        }
        assert_eq!(
            answers,
            [Ok(1), Ok(2), Err("no c".into()), Err("no d".into()), Ok(3)]
        );
        assert_eq!(f.injected(), 2);
        assert_eq!(f.calls(Op::Put), 5);
        assert_eq!(f.calls(Op::Get), 0);
        // Before the call: the faulted puts never reached the store.
        assert_eq!(f.inner().puts.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn an_after_effect_fault_applies_the_effect_and_loses_the_answer() {
        let f = Faulty::new(Store::default()).with_rule(
            Rule::on(Op::Put, |_| "502".to_owned())
                .times(1)
                .after_effect(),
        );
        assert_eq!(put(&f, "a").await, Err("502".into()));
        assert_eq!(f.inner().puts.load(Ordering::SeqCst), 1, "the put happened");
        assert_eq!(put(&f, "b").await, Ok(2));
        assert_eq!(f.injected(), 1);
    }

    #[tokio::test]
    async fn an_after_effect_rule_counts_only_calls_that_took_effect() {
        let f = Faulty::new(Store::default()).with_rule(
            Rule::on(Op::Put, |a| format!("lost {}", key(a)))
                .skip(1)
                .times(1)
                .after_effect(),
        );
        assert_eq!(put(&f, "a").await, Ok(1));
        assert_eq!(put(&f, "!b").await, Err("refused !b".into()));
        assert_eq!(put(&f, "c").await, Err("lost c".into()));
        assert_eq!(put(&f, "d").await, Ok(3));
        assert_eq!(f.inner().puts.load(Ordering::SeqCst), 3);
        assert_eq!((f.injected(), f.calls(Op::Put)), (1, 4));
    }

    #[tokio::test]
    async fn rules_take_calls_in_the_order_they_were_added_whatever_their_timing() {
        let f = Faulty::new(Store::default())
            .with_rule(
                Rule::on(Op::Put, |_| "after".to_owned())
                    .times(1)
                    .after_effect(),
            )
            .with_rule(Rule::on(Op::Put, |_| "before".to_owned()).times(1));
        assert_eq!(put(&f, "a").await, Err("after".into()));
        assert_eq!(put(&f, "b").await, Err("before".into()));
        assert_eq!(put(&f, "c").await, Ok(2));
        assert_eq!(f.inner().puts.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn conditions_narrow_a_rule_and_the_first_firing_rule_answers() {
        let asked = Arc::new(AtomicU32::new(0));
        let seen = asked.clone();
        let f = Faulty::new(Store::default())
            .with_rule(
                Rule::on(Op::Put, |_| "first".to_owned())
                    .when(|a| key(a).starts_with('x'))
                    .times(1),
            )
            .with_rule(Rule::any(|_| "second".to_owned()).when(move |_| {
                seen.fetch_add(1, Ordering::SeqCst);
                true
            }));
        assert_eq!(put(&f, "xa").await, Err("first".into()));
        // The second rule did not see the call the first one answered.
        assert_eq!(asked.load(Ordering::SeqCst), 0);
        assert_eq!(put(&f, "xb").await, Err("second".into()));
        let get = f.run(OpArgs::Get { key: "k" }, async { Ok::<u32, String>(0) });
        assert_eq!(get.await, Err("second".into()));
        assert_eq!(asked.load(Ordering::SeqCst), 2);
        assert_eq!(f.injected(), 3);
        assert_eq!(
            f.call_counts(),
            BTreeMap::from([(Op::Put, 2), (Op::Get, 1)])
        );
    }

    #[tokio::test]
    async fn shared_decorators_count_into_one_set_of_rules() {
        let a = Faulty::new(Store::default()).with_rule(
            Rule::on(Op::Put, |_| "crash".to_owned())
                .skip(1)
                .times(1)
                .after_effect(),
        );
        let b = a.share(Store::default());
        assert_eq!(put(&a, "1").await, Ok(1));
        assert_eq!(put(&b, "2").await, Err("crash".into()));
        assert_eq!(b.inner().puts.load(Ordering::SeqCst), 1);
        assert_eq!(put(&a, "3").await, Ok(2));
        assert_eq!((a.injected(), b.injected()), (1, 1));
        assert_eq!(a.calls(Op::Put), 3);
    }

    #[tokio::test]
    async fn rules_added_later_apply_from_the_next_call() {
        let f = Faulty::new(Store::default());
        assert_eq!(put(&f, "a").await, Ok(1));
        f.inject(Rule::on(Op::Put, |_| "now".to_owned()).times(1));
        assert_eq!(put(&f, "b").await, Err("now".into()));
        assert_eq!(put(&f, "c").await, Ok(2));
        assert!(format!("{:?}", f.faults.rules.lock().unwrap()).contains("fired: 1"));
    }
}
