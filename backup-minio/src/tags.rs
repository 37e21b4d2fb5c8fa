//! Whether an exported object's tags are asked for: the `objectTags` mode of a bucket.
//!
//! GetObject answers `x-amz-tagging-count` (the number of tags) when an object has tags:
//! AWS S3, MinIO, Ceph RGW and moto send it. In [`ObjectTags::Advertised`] mode (the
//! default) the export asks GetObjectTagging only for objects whose GET advertised a count
//! above zero, one request per untagged object instead of two.
//!
//! To catch a server that stores tags but does not advertise them, the first
//! [`TAG_SAMPLE`] objects of each bucket are *sampled*: their tags are asked for anyway,
//! alongside the GET, so their records are right whatever the server does. When a sampled
//! object has tags that its GET did not advertise ([`hides_tags`]), the bucket switches to
//! [`ObjectTags::Always`] for the rest of its export and the export's metadata carries a
//! warning. Objects listed after the sample whose GET advertised no tags wait for the
//! sample's verdict before they are written without tags, and ask for their tags after all
//! when the verdict is [`Verdict::Always`]: no object is recorded without its tags because
//! the sample was still running.
//!
//! Residual risk: a server that does not advertise the count and whose first
//! [`TAG_SAMPLE`] objects carry no tags passes the sample, and tags of later objects are
//! not exported. For such a server choose `"objectTags": "always"`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use tokio::sync::watch;

use crate::config::ObjectTags;

/// How many objects of each bucket have their tags asked for whatever their GET says.
pub const TAG_SAMPLE: usize = 8;

/// The warning of a bucket that switched to asking every object's tags.
pub const HIDDEN_TAGS_WARNING: &str = "the server stores object tags without advertising them \
     (x-amz-tagging-count): this bucket's tags were asked for object by object from then on; \
     set \"objectTags\": \"always\" for this server";

/// How one object's tags are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagPlan {
    /// Asked for alongside the GET; the GET's advertised count is checked against them.
    Sample,
    /// Asked for alongside the GET.
    Always,
    /// Asked for once the GET advertised a count above zero, or when the sample's
    /// verdict is [`Verdict::Always`].
    Advertised,
}

/// What the sample of a bucket found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Sampled objects are still being read.
    Pending,
    /// Every sampled object's tags matched what its GET advertised: the count is trusted.
    Trusted,
    /// A sampled object had tags its GET did not advertise: ask for every object's tags.
    Always,
}

/// Whether a sampled object shows a server hiding tags: it has tags, and its GET
/// advertised no tag count (or zero).
pub fn hides_tags(advertised: Option<i32>, tags: &BTreeMap<String, String>) -> bool {
    !tags.is_empty() && advertised.unwrap_or(0) <= 0
}

/// The sampling state of one bucket, without any synchronisation (see [`TagPolicy`]).
#[derive(Debug, Clone)]
pub struct Sampling {
    mode: ObjectTags,
    sample: usize,
    planned: usize,
    reported: usize,
    verdict: Verdict,
}

impl Sampling {
    /// A bucket in `mode` whose first `sample` objects are sampled.
    pub fn new(mode: ObjectTags, sample: usize) -> Self {
        let verdict = match mode {
            ObjectTags::Always => Verdict::Always,
            ObjectTags::Advertised if sample == 0 => Verdict::Trusted,
            ObjectTags::Advertised => Verdict::Pending,
        };
        Sampling {
            mode,
            sample,
            planned: 0,
            reported: 0,
            verdict,
        }
    }

    /// The plan of the next object in listing order.
    pub fn plan(&mut self) -> TagPlan {
        if self.mode == ObjectTags::Always || self.verdict == Verdict::Always {
            return TagPlan::Always;
        }
        if self.planned < self.sample {
            self.planned += 1;
            return TagPlan::Sample;
        }
        TagPlan::Advertised
    }

    /// Records what one sampled object showed; returns the verdict when this report
    /// settled it.
    pub fn report(&mut self, hidden: bool) -> Option<Verdict> {
        if self.verdict != Verdict::Pending {
            return None;
        }
        self.reported += 1;
        if hidden {
            self.verdict = Verdict::Always;
        } else if self.reported >= self.sample {
            self.verdict = Verdict::Trusted;
        } else {
            return None;
        }
        Some(self.verdict)
    }

    /// The verdict so far.
    pub fn verdict(&self) -> Verdict {
        self.verdict
    }

    /// Whether the bucket switched from `advertised` to `always` after its sample.
    pub fn switched(&self) -> bool {
        self.mode == ObjectTags::Advertised && self.verdict == Verdict::Always
    }
}

/// The shared sampling state of one bucket's export: plans are taken in listing order,
/// reports and waits come from the fetch tasks.
#[derive(Debug)]
pub struct TagPolicy {
    sampling: Mutex<Sampling>,
    verdict: watch::Sender<Verdict>,
    requests: AtomicU64,
}

impl TagPolicy {
    /// The policy of a bucket exported in `mode`.
    pub fn new(mode: ObjectTags) -> Self {
        let sampling = Sampling::new(mode, TAG_SAMPLE);
        let (verdict, _) = watch::channel(sampling.verdict());
        TagPolicy {
            sampling: Mutex::new(sampling),
            verdict,
            requests: AtomicU64::new(0),
        }
    }

    /// The plan of the next object in listing order.
    pub fn plan(&self) -> TagPlan {
        match self.sampling.lock() {
            Ok(mut sampling) => sampling.plan(),
            Err(_) => TagPlan::Always,
        }
    }

    /// Records what a sampled object showed (see [`hides_tags`]).
    pub fn report(&self, hidden: bool) {
        let settled = match self.sampling.lock() {
            Ok(mut sampling) => sampling.report(hidden),
            Err(_) => Some(Verdict::Always),
        };
        if let Some(verdict) = settled {
            self.verdict.send_replace(verdict);
        }
    }

    /// Waits for the sample's verdict. Only objects planned after the whole sample wait,
    /// and every sampled object reports (or the export fails and drops the waiters).
    pub async fn verdict(&self) -> Verdict {
        let mut rx = self.verdict.subscribe();
        let verdict = match rx.wait_for(|v| *v != Verdict::Pending).await {
            Ok(v) => *v,
            Err(_) => Verdict::Always,
        };
        verdict
    }

    /// Counts one GetObjectTagging request.
    pub fn count_request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// How many GetObjectTagging requests the export made.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Whether the bucket switched to asking every object's tags.
    pub fn switched(&self) -> bool {
        self.sampling.lock().map(|s| s.switched()).unwrap_or(false)
    }
}

/// Reports a sampled object as showing nothing when it is dropped before reporting (an
/// object deleted since it was listed, or a failed read), so waiters are never stuck.
#[derive(Debug)]
pub struct SampleGuard<'a> {
    policy: Option<&'a TagPolicy>,
}

impl<'a> SampleGuard<'a> {
    /// A guard for an object read under `plan` (only [`TagPlan::Sample`] reports).
    pub fn new(policy: &'a TagPolicy, plan: TagPlan) -> Self {
        SampleGuard {
            policy: (plan == TagPlan::Sample).then_some(policy),
        }
    }

    /// Reports what the object showed.
    pub fn report(mut self, advertised: Option<i32>, tags: &BTreeMap<String, String>) {
        if let Some(policy) = self.policy.take() {
            policy.report(hides_tags(advertised, tags));
        }
    }
}

impl Drop for SampleGuard<'_> {
    fn drop(&mut self) {
        if let Some(policy) = self.policy.take() {
            policy.report(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Plans the whole sample of `sampling`, then reports `hidden` for each in turn.
    fn run_sample(sampling: &mut Sampling, hidden: &[bool]) -> Vec<Option<Verdict>> {
        for _ in 0..hidden.len() {
            assert_eq!(sampling.plan(), TagPlan::Sample);
        }
        hidden.iter().map(|h| sampling.report(*h)).collect()
    }

    #[test]
    fn an_object_with_tags_and_no_advertised_count_hides_tags() {
        let some = tags(&[("team", "backup")]);
        assert!(hides_tags(None, &some));
        assert!(hides_tags(Some(0), &some));
        assert!(!hides_tags(Some(1), &some));
        assert!(!hides_tags(None, &BTreeMap::new()));
        assert!(!hides_tags(Some(0), &BTreeMap::new()));
    }

    #[test]
    fn a_sampled_object_hiding_its_tags_switches_the_bucket_to_always() {
        let mut sampling = Sampling::new(ObjectTags::Advertised, 8);
        let verdicts = run_sample(&mut sampling, &[false, false, true]);
        assert_eq!(verdicts, [None, None, Some(Verdict::Always)]);
        assert!(sampling.switched());
        // The rest of the sample changes nothing; every later object asks for its tags.
        assert_eq!(sampling.report(false), None);
        assert_eq!(sampling.verdict(), Verdict::Always);
        assert_eq!(sampling.plan(), TagPlan::Always);
    }

    #[test]
    fn a_clean_sample_trusts_the_count_for_later_objects() {
        let mut sampling = Sampling::new(ObjectTags::Advertised, 8);
        let verdicts = run_sample(&mut sampling, &[false; 8]);
        assert_eq!(verdicts[..7], [None; 7]);
        assert_eq!(verdicts[7], Some(Verdict::Trusted));
        assert_eq!(sampling.plan(), TagPlan::Advertised);
        assert!(!sampling.switched());
    }

    #[test]
    fn always_mode_asks_every_object_and_never_reports_a_switch() {
        let mut sampling = Sampling::new(ObjectTags::Always, 8);
        assert!((0..20).all(|_| sampling.plan() == TagPlan::Always));
        assert_eq!(sampling.report(true), None);
        assert_eq!(sampling.verdict(), Verdict::Always);
        assert!(!sampling.switched());
    }

    #[tokio::test]
    async fn objects_after_the_sample_wait_for_its_verdict() {
        let policy = std::sync::Arc::new(TagPolicy::new(ObjectTags::Advertised));
        let plans: Vec<TagPlan> = (0..TAG_SAMPLE + 1).map(|_| policy.plan()).collect();
        assert_eq!(plans[TAG_SAMPLE], TagPlan::Advertised);
        let waiter = tokio::spawn({
            let policy = policy.clone();
            async move { policy.verdict().await }
        });
        // One sampled object dropped unread (deleted since listed) reports nothing found.
        drop(SampleGuard::new(&policy, TagPlan::Sample));
        SampleGuard::new(&policy, TagPlan::Sample).report(None, &tags(&[("a", "b")]));
        assert_eq!(waiter.await.ok(), Some(Verdict::Always));
        assert!(policy.switched());
    }

    #[tokio::test]
    async fn a_sample_that_ends_unread_still_settles_the_verdict() {
        let policy = TagPolicy::new(ObjectTags::Advertised);
        for _ in 0..TAG_SAMPLE {
            let guard = SampleGuard::new(&policy, policy.plan());
            drop(guard);
        }
        assert_eq!(policy.verdict().await, Verdict::Trusted);
        assert!(!policy.switched());
    }
}
