//! The simulated call floor: a deterministic discrete-event model of a phone system that
//! yields protocol events in time order.
//!
//! Owns: the floor's simulated state (agents, calls, queues, the agenda of what happens
//! next) and nothing else. Must not: do I/O, read a clock, or know the rules engine. The same
//! [`SimConfig`] and start time always give the same events, byte for byte.
//!
//! Agents obey the floor rules (rules page) unless they are *unruly*; unruly agents break
//! them with the probabilities in [`Misconduct`].
//!
//! Two parts live in submodules: `roster` (seats, shifts and handovers, when the config has
//! a [`Roster`]) and `campaign` (outbound dialing with dispositions, when it has an
//! `outbound` share). Without them the floor is the one the simulator always had, and the
//! same seed gives the same bytes as before they existed.

use std::collections::{BTreeMap, VecDeque};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Exp, LogNormal};
use serde::Serialize;

use crate::time::{Millis, Timestamp};

mod campaign;
mod roster;

use campaign::Dial;
pub use roster::{Handover, Roster, Seat};
use roster::{ShiftKey, ShiftPlan};

const SEC: Millis = 1_000;
const MIN: Millis = 60_000;
const HOUR: Millis = 3_600_000;

/// How long the platform lets a call ring at one agent before it takes it away
/// (ring-no-answer). Longer than the 15 s rule, as on most ACDs, so a ring-out is `late`.
const RONA: Millis = 30 * SEC;

/// How long the floor takes at most to fill at the start of a run and to empty at its end.
const WIND: Millis = 10 * MIN;

/// When the showcase opening stages its first incidents, after the logins at the start.
const STAGE: Millis = 500;

/// The demo's outbound campaign: 70 % of the agents' idle time, so the sales board moves.
const DEMO_OUTBOUND: f64 = 0.7;

/// Queues and their share of inbound traffic.
const QUEUES: [(&str, f64); 3] = [("sales", 0.45), ("service", 0.40), ("billing", 0.15)];

/// Pause reasons an unruly agent types that the default reasons table does not know.
const UNKNOWN_REASONS: [&str; 5] = ["BREAK", "smoke", "toilet", "Break", "lunch"];

/// Probabilities with which *unruly* agents break the rules. Compliant agents never do.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Misconduct {
    /// Share of agents who are unruly (each agent drawn independently).
    pub unruly_share: f64,
    /// Per ring: answer after the 3-ring limit (16–28 s).
    pub late_answer: f64,
    /// Per ring: do not answer at all; half decline within 12 s (`missed`), half let it ring
    /// until the platform takes it away at 30 s (`late`).
    pub ring_out: f64,
    /// Per break or meal: stay out past the reason's `max`.
    pub break_overrun: f64,
    /// Per agent: ignore the daily break allowance and take a break every 25–50 minutes.
    pub break_hog: f64,
    /// Per pause: set `not_ready` with no reason.
    pub no_reason: f64,
    /// Per pause: type a reason the reasons table does not know (`BREAK`, `smoke`, ...).
    pub unknown_reason: f64,
    /// Per pause (other than a meal): it is a meeting, the occasion for the next two.
    /// Compliant agents' share is 0.2.
    pub meeting_share: f64,
    /// Per meeting: go to the meeting without a lead's approval.
    pub unapproved: f64,
    /// Per approved meeting: stay paused 3–10 minutes after the approval ran out.
    pub approval_overstay: f64,
    /// Per wrap-up: stay in `acw` 65–180 s (longer than `acw_max`).
    pub acw_overrun: f64,
    /// Per idle spell: go to `acw` with no call for 20–120 s.
    pub acw_without_call: f64,
    /// Per shift (with a roster): log in 1–15 minutes after the start, past the 1-minute
    /// grace.
    pub late_login: f64,
    /// Per shift (with a roster): do not come at all; the lead cancels the shift 10–25
    /// minutes after its start, which releases the agent waiting to be relieved.
    pub absent: f64,
    /// Per handover (with a roster): log out in the last 1–14 minutes of the shift, before
    /// the relief is there.
    pub left_early: f64,
    /// Per shift (with a roster): walk away without logging out; the lead logs the session
    /// out 12–40 minutes later.
    pub forgot_logout: f64,
}

impl Misconduct {
    /// A realistic floor: a fifth of the agents bend the rules now and then.
    pub fn modest() -> Misconduct {
        Misconduct {
            unruly_share: 0.2,
            late_answer: 0.08,
            ring_out: 0.03,
            break_overrun: 0.2,
            break_hog: 0.3,
            no_reason: 0.08,
            unknown_reason: 0.08,
            meeting_share: 0.2,
            unapproved: 0.3,
            approval_overstay: 0.3,
            acw_overrun: 0.08,
            acw_without_call: 0.02,
            late_login: 0.1,
            absent: 0.03,
            left_early: 0.08,
            forgot_logout: 0.1,
        }
    }

    /// The demo's floor: half the agents misbehave, often, so every rule fires soon.
    pub fn unruly() -> Misconduct {
        Misconduct {
            unruly_share: 0.5,
            late_answer: 0.2,
            ring_out: 0.08,
            break_overrun: 0.4,
            break_hog: 0.5,
            no_reason: 0.15,
            unknown_reason: 0.15,
            meeting_share: 0.45,
            unapproved: 0.5,
            approval_overstay: 0.6,
            acw_overrun: 0.2,
            acw_without_call: 0.06,
            late_login: 0.25,
            absent: 0.08,
            left_early: 0.2,
            forgot_logout: 0.25,
        }
    }

    /// The realistic stream shape's floor (`--shape realistic`): nearly everyone bends the
    /// rules, so that about 18 % of events raise a violation, as on the floors that stream
    /// was measured on.
    pub fn heavy() -> Misconduct {
        Misconduct {
            unruly_share: 0.9,
            late_answer: 0.6,
            ring_out: 0.14,
            break_overrun: 0.6,
            break_hog: 0.7,
            no_reason: 0.3,
            unknown_reason: 0.3,
            meeting_share: 0.5,
            unapproved: 0.6,
            approval_overstay: 0.7,
            acw_overrun: 0.45,
            acw_without_call: 0.2,
            late_login: 0.3,
            absent: 0.1,
            left_early: 0.25,
            forgot_logout: 0.3,
        }
    }

    /// Nobody breaks a rule.
    pub fn none() -> Misconduct {
        Misconduct {
            unruly_share: 0.0,
            ..Misconduct::modest()
        }
    }
}

/// How the shift opens.
#[derive(Clone, Debug, PartialEq)]
pub enum Opening {
    /// Agents log in at random times over the first `over` milliseconds.
    Staggered { over: Millis },
    /// Everyone logs in at the start and a few incidents are staged at once, so that a
    /// newcomer sees every agent state and the first violations within 20 seconds.
    Showcase,
}

/// What to simulate.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    pub agents: usize,
    pub teams: usize,
    pub seed: u64,
    /// Simulated length; at the end every call is closed and every agent logs out.
    /// `None` runs forever.
    pub duration: Option<Millis>,
    pub misconduct: Misconduct,
    pub opening: Opening,
    /// Prefix of call ids (`{prefix}{n}`).
    pub call_prefix: String,
    /// Target share of available agent time spent on inbound calls; sets the arrival rate.
    pub occupancy: f64,
    /// Seats, shifts and handovers; `None`: everyone works the whole run.
    pub roster: Option<Roster>,
    /// Outbound campaign: the share of the agents' idle time spent dialing (0..=1), with
    /// dispositions. `None`: no campaign, only the odd outbound call (about one per 12
    /// idle minutes, no dispositions), as before campaigns existed.
    pub outbound: Option<f64>,
}

impl SimConfig {
    /// A `simulate` floor: modest misconduct, logins over the first 10 minutes (the first
    /// tenth of a run shorter than 100 minutes: [`Generator::wind`]).
    pub fn new(agents: usize, teams: usize, seed: u64) -> SimConfig {
        SimConfig {
            agents,
            teams,
            seed,
            duration: None,
            misconduct: Misconduct::modest(),
            opening: Opening::Staggered { over: WIND },
            call_prefix: "c-".to_string(),
            occupancy: 0.7,
            roster: None,
            outbound: None,
        }
    }

    /// The demo floor: `agents` seats (one team per eight), unruly mix, showcase opening, a
    /// roster of three agents per seat in 8-hour shifts ([`Roster::demo`]: three seats hand
    /// over in the first four minutes), and an outbound campaign on 70 % of the idle time.
    /// The agents who come later are counted in [`SimConfig::agents`].
    pub fn demo(agents: usize, seed: u64) -> SimConfig {
        let roster = Roster::demo(agents);
        SimConfig {
            teams: agents.div_ceil(8).max(1),
            misconduct: Misconduct::unruly(),
            opening: Opening::Showcase,
            outbound: Some(DEMO_OUTBOUND),
            ..SimConfig::new(roster.agents(), 1, seed)
        }
        .with_roster(roster)
    }

    /// This config with `roster`.
    pub fn with_roster(mut self, roster: Roster) -> SimConfig {
        self.roster = Some(roster);
        self
    }
}

/// One protocol event as the simulator produces it. Serializes to the protocol's JSON
/// (`type`, `ts`, `seq`, then the fields of the type).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimEvent {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub ts: Timestamp,
    pub seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub call: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub minutes: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shift: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<&'static str>,
}

impl SimEvent {
    pub(crate) fn new(kind: &'static str, ts: Timestamp) -> SimEvent {
        SimEvent {
            kind,
            ts,
            seq: 0,
            agent: None,
            team: None,
            state: None,
            reason: None,
            call: None,
            queue: None,
            minutes: None,
            by: None,
            shift: None,
            start: None,
            end: None,
            position: None,
            code: None,
        }
    }

    /// The event as one JSON object.
    pub fn to_json(&self) -> String {
        // Only strings, integers and a Timestamp: serialization cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Activity {
    Out,
    Idle,
    Ringing(u64),
    Talking(u64),
    Dialing(u64),
    Acw,
    Paused,
    /// Logged in, but the agent has walked away (a session left open after the shift).
    Gone,
}

struct Agent {
    id: String,
    team: usize,
    unruly: bool,
    hog: bool,
    act: Activity,
    /// Bumped on every activity change; scheduled actions carry it and go stale.
    epoch: u64,
    idle_since: Timestamp,
    pause_token: u64,
    pending_pause: bool,
    pending_logout: bool,
    /// When the agent next goes for a meal: 3.5 h into the shift, then 8 h after each.
    next_meal: Timestamp,
    /// Starts and planned lengths of this agent's breaks, for the daily allowance.
    breaks: Vec<(Timestamp, Millis)>,
    /// The roster's shift the agent is working.
    on_shift: Option<ShiftKey>,
    /// Leaving this shift, the agent walks away without logging out.
    forget: bool,
    /// Relieved (or with nobody to hand over to): takes no new call before leaving.
    handing_over: bool,
    /// The campaign call and code to enter when the wrap-up is done.
    disposition: Option<(String, &'static str)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CallState {
    Waiting,
    Ringing(usize),
    Dialing(usize),
    Talking(usize),
}

struct Call {
    id: String,
    queue: Option<usize>,
    queued_at: Timestamp,
    state: CallState,
    /// Agents this call already rang at unanswered; it is not offered to them again.
    tried: Vec<usize>,
    /// Staged calls of the showcase opening.
    prefer: Option<usize>,
    ring: Option<Millis>,
    talk: Option<Millis>,
    /// A campaign call: how the far end takes it.
    campaign: Option<Dial>,
}

/// A pause as the agent will take it.
struct PausePlan {
    /// `None`: no reason at all.
    reason: Option<String>,
    dur: Millis,
    /// Lead's approval: delay after the pause starts, and minutes granted.
    approval: Option<(Millis, u32)>,
    /// Set `not_ready` without a reason first and pick the reason this long after (within
    /// the grace), as agents do on a real phone.
    lead_in: Option<Millis>,
}

enum Action {
    Login(usize),
    Arrival(usize),
    Dispatch,
    Answer {
        agent: usize,
        epoch: u64,
        call: u64,
    },
    NoAnswer {
        agent: usize,
        epoch: u64,
        call: u64,
    },
    Abandon(u64),
    HangUp(u64),
    FarEnd(u64),
    WrapUpDone {
        agent: usize,
        epoch: u64,
    },
    PauseDue {
        agent: usize,
        token: u64,
    },
    StagedPause(usize, PausePlan),
    StagedCall {
        prefer: Option<usize>,
        ring: Option<Millis>,
        talk: Option<Millis>,
    },
    StagedAcw {
        agent: usize,
        dur: Millis,
    },
    PauseReason {
        agent: usize,
        epoch: u64,
        reason: String,
    },
    PauseOver {
        agent: usize,
        epoch: u64,
    },
    Approval {
        agent: usize,
        reason: String,
        minutes: u32,
    },
    Outbound {
        agent: usize,
        epoch: u64,
    },
    Mischief {
        agent: usize,
        epoch: u64,
    },
    LogoutDue(usize),
    End,
    /// The roster's next publication.
    Publish,
    ShiftLogin {
        shift: ShiftKey,
        agent: usize,
    },
    ShiftEnd(ShiftKey),
    NoShow(ShiftKey),
    Leave(ShiftKey),
    ForcedLogout {
        agent: usize,
        epoch: u64,
    },
    /// A callback turned into a sale: the agent changes the call's disposition.
    Redisposition {
        agent: usize,
        call: String,
    },
}

/// The simulator: an iterator of [`SimEvent`]s in time order, `seq` 1, 2, 3, ...
pub struct Generator {
    cfg: SimConfig,
    rng: StdRng,
    start: Timestamp,
    end: Option<Timestamp>,
    /// What happens next, by (time, priority, insertion order): deterministic ties.
    agenda: BTreeMap<(Timestamp, u8, u64), Action>,
    order: u64,
    seq: u64,
    out: VecDeque<SimEvent>,
    agents: Vec<Agent>,
    calls: BTreeMap<u64, Call>,
    /// Calls waiting for an agent, oldest first.
    waiting: Vec<u64>,
    next_call: u64,
    dispatch_pending: bool,
    /// Mean inter-arrival time per queue (ms).
    arrival_mean: Vec<f64>,
    finished: bool,
    /// The config's roster (taken out of `cfg`).
    roster: Option<Roster>,
    /// Published shifts still to be played or looked back at.
    plans: BTreeMap<ShiftKey, ShiftPlan>,
    /// Per seat, the first shift not yet published.
    next_shift: Vec<u32>,
}

impl Generator {
    pub fn new(mut cfg: SimConfig, start: Timestamp) -> Generator {
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let teams = cfg.teams.max(1);
        let roster = cfg.roster.take();
        // With a roster an agent belongs to the team of their seat.
        let seat_of = roster
            .as_ref()
            .map(|r| Self::seats_of(r, cfg.agents))
            .unwrap_or_default();
        let agents: Vec<Agent> = (0..cfg.agents)
            .map(|i| {
                let unruly = rng.random_bool(cfg.misconduct.unruly_share.clamp(0.0, 1.0));
                let hog = unruly && rng.random_bool(cfg.misconduct.break_hog.clamp(0.0, 1.0));
                Agent {
                    id: format!("a-{:04}", i + 1),
                    team: seat_of.get(i).copied().flatten().unwrap_or(i) % teams,
                    unruly,
                    hog,
                    act: Activity::Out,
                    epoch: 0,
                    idle_since: start,
                    pause_token: 0,
                    pending_pause: false,
                    pending_logout: false,
                    next_meal: start,
                    breaks: Vec::new(),
                    on_shift: None,
                    forget: false,
                    handing_over: false,
                    disposition: None,
                }
            })
            .collect();
        // Inbound load: occupancy × agents available (net of pauses) / handle time. With a
        // roster, one agent per seat is on shift at a time.
        let floor = roster.as_ref().map_or(cfg.agents, |r| r.seats.len());
        let aht_ms = 230.0 * SEC as f64;
        let rate_per_ms = cfg.occupancy.max(0.01) * (floor.max(1) as f64) * 0.85 / aht_ms;
        let arrival_mean = QUEUES
            .iter()
            .map(|(_, w)| 1.0 / (rate_per_ms * w))
            .collect();
        let end = cfg.duration.map(|d| start.plus(d));
        let mut g = Generator {
            cfg,
            rng,
            start,
            end,
            agenda: BTreeMap::new(),
            order: 0,
            seq: 0,
            out: VecDeque::new(),
            agents,
            calls: BTreeMap::new(),
            waiting: Vec::new(),
            next_call: 0,
            dispatch_pending: false,
            arrival_mean,
            finished: false,
            next_shift: vec![0; roster.as_ref().map_or(0, |r| r.seats.len())],
            roster,
            plans: BTreeMap::new(),
        };
        g.open();
        g
    }

    /// The simulated start time.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// The simulated end, if the run has one.
    pub fn end(&self) -> Option<Timestamp> {
        self.end
    }

    /// How long the floor takes to fill at the start of a run and to empty at its end (the
    /// phone lines close this long before the end): ten minutes, or a tenth of a run shorter
    /// than 100 minutes, so that a short run is mostly a full floor taking calls.
    pub fn wind(&self) -> Millis {
        self.end
            .map_or(WIND, |e| WIND.min(e.since(self.start) / 10))
    }

    /// Team id of team index `k`.
    pub fn team_id(k: usize) -> String {
        format!("hotline-{}", k + 1)
    }

    fn open(&mut self) {
        let t0 = self.start;
        if let Some(end) = self.end {
            // End runs after everything else due at the same millisecond.
            self.agenda.insert((end, 1, 0), Action::End);
            // With a roster, agents leave by their shifts.
            if self.roster.is_none() {
                let wind = self.wind().max(0);
                for i in 0..self.agents.len() {
                    let back = self.rng.random_range(0..=wind).min(end.since(t0));
                    self.at(end.plus(-back), Action::LogoutDue(i));
                }
            }
        }
        match (self.cfg.opening.clone(), self.roster.is_some()) {
            (Opening::Staggered { over }, false) => {
                let over = over.min(self.wind()).max(0);
                for i in 0..self.agents.len() {
                    let d = self.rng.random_range(0..=over);
                    self.at(t0.plus(d), Action::Login(i));
                }
            }
            (Opening::Staggered { .. }, true) => {
                for (s, a) in self.present_at_start() {
                    self.at(
                        t0,
                        Action::ShiftLogin {
                            shift: (s, 0),
                            agent: a,
                        },
                    );
                }
            }
            (Opening::Showcase, _) => self.stage_showcase(t0),
        }
        // After the opening's logins: the roster names agents already there.
        if self.roster.is_some() {
            self.at(t0, Action::Publish);
        }
        for q in 0..QUEUES.len() {
            let d = self.exp(self.arrival_mean[q]);
            self.at(t0.plus(d), Action::Arrival(q));
        }
    }

    /// Everyone in at once, then at +0.5 s: a pause with no reason (`no_reason` at +5.5 s),
    /// wrap-up without a call (`acw_without_call` at +5.5 s), a legitimate break; calls
    /// queued at once and rung from +0.7 s, one of them left ringing 19 s (`late` at +15.7 s),
    /// one short call that ends in wrap-up at about +11 s.
    ///
    /// With a roster, the agents are those of the shifts under way, in seat order.
    fn stage_showcase(&mut self, t0: Timestamp) {
        let who: Vec<usize> = if self.roster.is_some() {
            let present = self.present_at_start();
            for &(s, a) in &present {
                self.at(
                    t0,
                    Action::ShiftLogin {
                        shift: (s, 0),
                        agent: a,
                    },
                );
            }
            present.into_iter().map(|(_, a)| a).collect()
        } else {
            for i in 0..self.agents.len() {
                self.at(t0, Action::Login(i));
            }
            (0..self.agents.len()).collect()
        };
        let n = who.len();
        if n >= 1 {
            let dur = self.rng.random_range(60 * SEC..=120 * SEC);
            let plan = PausePlan {
                reason: None,
                dur,
                approval: None,
                lead_in: None,
            };
            self.at(t0.plus(STAGE), Action::StagedPause(who[0], plan));
        }
        if n >= 2 {
            let dur = self.rng.random_range(70 * SEC..=100 * SEC);
            self.at(t0.plus(STAGE), Action::StagedAcw { agent: who[1], dur });
        }
        if n >= 3 {
            let dur = self.rng.random_range(4 * MIN..=8 * MIN);
            let plan = PausePlan {
                reason: Some("break".into()),
                dur,
                approval: None,
                lead_in: None,
            };
            self.at(t0.plus(STAGE), Action::StagedPause(who[2], plan));
        }
        if n >= 4 {
            self.stage_call(t0, Some(who[3]), Some(19 * SEC), None);
        }
        if n >= 5 {
            let talk = self.rng.random_range(6 * SEC..=9 * SEC);
            self.stage_call(t0, Some(who[4]), Some(3 * SEC), Some(talk));
        }
        for _ in 0..(n / 4).max(1) {
            let d = self.rng.random_range(0..=3 * SEC);
            self.stage_call(t0.plus(d), None, None, None);
        }
        // Dispatch after the staged pauses so the staged agents are not handed calls first.
        self.dispatch_pending = true;
        self.at(t0.plus(STAGE + 200), Action::Dispatch);
    }

    fn stage_call(
        &mut self,
        t: Timestamp,
        prefer: Option<usize>,
        ring: Option<Millis>,
        talk: Option<Millis>,
    ) {
        self.at(t, Action::StagedCall { prefer, ring, talk });
    }

    fn staged_call(
        &mut self,
        t: Timestamp,
        prefer: Option<usize>,
        ring: Option<Millis>,
        talk: Option<Millis>,
    ) {
        let q = self.pick_queue();
        let key = self.new_call(t, Some(q));
        if let Some(c) = self.calls.get_mut(&key) {
            c.prefer = prefer;
            c.ring = ring;
            c.talk = talk;
        }
        // Staged calls wait patiently: they are there to be seen.
        self.emit_queued(t, key, None);
    }

    fn at(&mut self, t: Timestamp, a: Action) {
        self.order += 1;
        self.agenda.insert((t, 0, self.order), a);
    }

    fn exp(&mut self, mean_ms: f64) -> Millis {
        let x = Exp::new(1.0 / mean_ms.max(1.0))
            .map(|d| d.sample(&mut self.rng))
            .unwrap_or(mean_ms);
        x.round() as Millis
    }

    /// Log-normal with the given median and shape, clamped to `[lo, hi]`.
    fn lognormal(&mut self, median_ms: f64, sigma: f64, lo: Millis, hi: Millis) -> Millis {
        let x = LogNormal::new(median_ms.max(1.0).ln(), sigma)
            .map(|d| d.sample(&mut self.rng))
            .unwrap_or(median_ms);
        (x.round() as Millis).clamp(lo, hi)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p.clamp(0.0, 1.0))
    }

    fn pick_queue(&mut self) -> usize {
        let x: f64 = self.rng.random();
        let mut acc = 0.0;
        for (i, (_, w)) in QUEUES.iter().enumerate() {
            acc += w;
            if x < acc {
                return i;
            }
        }
        QUEUES.len() - 1
    }

    fn push(&mut self, mut ev: SimEvent) {
        debug_assert!(
            self.out.back().is_none_or(|b| b.ts <= ev.ts),
            "event out of time order: {ev:?}"
        );
        self.seq += 1;
        ev.seq = self.seq;
        self.out.push_back(ev);
    }

    fn agent_event(&self, kind: &'static str, t: Timestamp, i: usize) -> SimEvent {
        let mut ev = SimEvent::new(kind, t);
        ev.agent = Some(self.agents[i].id.clone());
        ev
    }

    fn call_event(
        &self,
        kind: &'static str,
        t: Timestamp,
        call: u64,
        agent: Option<usize>,
    ) -> SimEvent {
        let mut ev = SimEvent::new(kind, t);
        ev.call = self.calls.get(&call).map(|c| c.id.clone());
        ev.agent = agent.map(|i| self.agents[i].id.clone());
        ev
    }

    fn emit_state(
        &mut self,
        t: Timestamp,
        i: usize,
        state: &'static str,
        reason: Option<String>,
        call: Option<u64>,
    ) {
        let mut ev = self.agent_event("agent.state", t, i);
        ev.state = Some(state);
        ev.reason = reason;
        ev.call = call.and_then(|c| self.calls.get(&c).map(|c| c.id.clone()));
        self.push(ev);
    }

    fn set_act(&mut self, i: usize, act: Activity) {
        let a = &mut self.agents[i];
        a.act = act;
        a.epoch += 1;
    }

    fn new_call(&mut self, t: Timestamp, queue: Option<usize>) -> u64 {
        self.next_call += 1;
        let key = self.next_call;
        let call = Call {
            id: format!("{}{:06}", self.cfg.call_prefix, key),
            queue,
            queued_at: t,
            state: CallState::Waiting,
            tried: Vec::new(),
            prefer: None,
            ring: None,
            talk: None,
            campaign: None,
        };
        self.calls.insert(key, call);
        key
    }

    fn emit_queued(&mut self, t: Timestamp, key: u64, patience: Option<Millis>) {
        let mut ev = self.call_event("call.queued", t, key, None);
        ev.queue = self
            .calls
            .get(&key)
            .and_then(|c| c.queue)
            .map(|q| QUEUES[q].0.to_string());
        self.push(ev);
        self.waiting.push(key);
        if let Some(p) = patience {
            self.at(t.plus(p), Action::Abandon(key));
        }
    }

    fn schedule_dispatch(&mut self, t: Timestamp) {
        if !self.dispatch_pending {
            self.dispatch_pending = true;
            let d = self.rng.random_range(300..=1_500);
            self.at(t.plus(d), Action::Dispatch);
        }
    }

    fn handle(&mut self, t: Timestamp, a: Action) {
        match a {
            Action::Login(i) => self.login(t, i),
            Action::Arrival(q) => self.arrival(t, q),
            Action::Dispatch => self.dispatch(t),
            Action::Answer { agent, epoch, call } => self.answer(t, agent, epoch, call),
            Action::NoAnswer { agent, epoch, call } => self.no_answer(t, agent, epoch, call),
            Action::Abandon(call) => self.abandon(t, call),
            Action::HangUp(call) => self.hang_up(t, call),
            Action::FarEnd(call) => self.far_end(t, call),
            Action::WrapUpDone { agent, epoch } => {
                if self.agents[agent].act == Activity::Acw && self.agents[agent].epoch == epoch {
                    self.leave_acw(t, agent);
                }
            }
            Action::PauseDue { agent, token } => self.pause_due(t, agent, token),
            Action::StagedPause(i, plan) => {
                if self.agents[i].act == Activity::Idle {
                    self.start_pause(t, i, plan);
                }
            }
            Action::StagedCall { prefer, ring, talk } => self.staged_call(t, prefer, ring, talk),
            Action::StagedAcw { agent, dur } => {
                if self.agents[agent].act == Activity::Idle {
                    self.acw_without_call(t, agent, dur);
                }
            }
            Action::PauseReason {
                agent,
                epoch,
                reason,
            } => {
                if self.agents[agent].act == Activity::Paused && self.agents[agent].epoch == epoch {
                    self.emit_state(t, agent, "not_ready", Some(reason), None);
                }
            }
            Action::PauseOver { agent, epoch } => {
                if self.agents[agent].act == Activity::Paused && self.agents[agent].epoch == epoch {
                    self.end_pause(t, agent);
                }
            }
            Action::Approval {
                agent,
                reason,
                minutes,
            } => {
                if self.agents[agent].act != Activity::Out {
                    let mut ev = self.agent_event("approval.granted", t, agent);
                    ev.reason = Some(reason);
                    ev.minutes = Some(minutes);
                    ev.by = Some(format!("lead-{}", Self::team_id(self.agents[agent].team)));
                    self.push(ev);
                }
            }
            Action::Outbound { agent, epoch } => self.outbound(t, agent, epoch),
            Action::Mischief { agent, epoch } => {
                if self.agents[agent].act == Activity::Idle && self.agents[agent].epoch == epoch {
                    let dur = self.rng.random_range(20 * SEC..=120 * SEC);
                    self.acw_without_call(t, agent, dur);
                }
            }
            Action::LogoutDue(i) => {
                self.agents[i].pending_logout = true;
                if matches!(self.agents[i].act, Activity::Idle | Activity::Paused) {
                    self.leave(t, i);
                }
            }
            Action::End => self.close(t),
            Action::Publish => self.publish(t),
            Action::ShiftLogin { shift, agent } => self.shift_login(t, shift, agent),
            Action::ShiftEnd(key) => self.shift_end(t, key),
            Action::NoShow(key) => self.no_show(t, key),
            Action::Leave(key) => self.shift_leave(t, key),
            Action::ForcedLogout { agent, epoch } => {
                if self.agents[agent].act == Activity::Gone && self.agents[agent].epoch == epoch {
                    self.logout(t, agent);
                }
            }
            Action::Redisposition { agent, call } => self.redisposition(t, agent, call),
        }
    }

    fn login(&mut self, t: Timestamp, i: usize) {
        let mut ev = self.agent_event("agent.login", t, i);
        ev.team = Some(Self::team_id(self.agents[i].team));
        self.push(ev);
        self.agents[i].next_meal = t.plus(3 * HOUR + 30 * MIN);
        self.schedule_next_pause(t, i);
        self.become_idle(t, i);
    }

    fn logout(&mut self, t: Timestamp, i: usize) {
        let ev = self.agent_event("agent.logout", t, i);
        self.push(ev);
        self.set_act(i, Activity::Out);
        let a = &mut self.agents[i];
        a.on_shift = None;
        a.forget = false;
        a.handing_over = false;
        a.pending_logout = false;
        a.pending_pause = false;
    }

    /// The agent leaves the floor: logs out, or walks away if they forget to.
    fn leave(&mut self, t: Timestamp, i: usize) {
        if self.agents[i].forget {
            self.walk_away(t, i);
        } else {
            self.logout(t, i);
        }
    }

    /// The agent is free again: take what is pending, else wait for a call.
    fn become_idle(&mut self, t: Timestamp, i: usize) {
        self.set_act(i, Activity::Idle);
        self.agents[i].idle_since = t;
        if self.run_pending(t, i) {
            return;
        }
        let epoch = self.agents[i].epoch;
        self.schedule_dispatch(t);
        match self.cfg.outbound {
            None => {
                let d = self.exp(12.0 * MIN as f64);
                self.at(t.plus(d), Action::Outbound { agent: i, epoch });
            }
            Some(share) => self.plan_dial(t, i, epoch, share),
        }
        if self.agents[i].unruly && self.chance(self.cfg.misconduct.acw_without_call) {
            let d = self.rng.random_range(15 * SEC..=90 * SEC);
            self.at(t.plus(d), Action::Mischief { agent: i, epoch });
        }
    }

    fn arrival(&mut self, t: Timestamp, q: usize) {
        if let Some(end) = self.end {
            // The lines close before the end, while the agents leave.
            if t >= end.plus(-self.wind()) {
                return;
            }
        }
        let key = self.new_call(t, Some(q));
        let patience = 15 * SEC + self.exp(75.0 * SEC as f64);
        self.emit_queued(t, key, Some(patience));
        self.schedule_dispatch(t);
        let d = self.exp(self.arrival_mean[q]);
        self.at(t.plus(d.max(1)), Action::Arrival(q));
    }

    fn dispatch(&mut self, t: Timestamp) {
        self.dispatch_pending = false;
        let waiting = std::mem::take(&mut self.waiting);
        let mut still = Vec::with_capacity(waiting.len());
        for key in waiting {
            let Some(call) = self.calls.get(&key) else {
                continue;
            };
            let prefer = call
                .prefer
                .filter(|&p| self.agents[p].act == Activity::Idle);
            let pick = prefer.or_else(|| {
                self.agents
                    .iter()
                    .enumerate()
                    .filter(|(i, a)| {
                        a.act == Activity::Idle && !a.handing_over && !call.tried.contains(i)
                    })
                    .min_by_key(|(i, a)| (a.idle_since, *i))
                    .map(|(i, _)| i)
            });
            match pick {
                Some(i) => self.ring(t, key, i),
                None => still.push(key),
            }
        }
        self.waiting = still;
    }

    fn ring(&mut self, t: Timestamp, key: u64, i: usize) {
        let (forced, queue) = match self.calls.get_mut(&key) {
            Some(c) => {
                c.state = CallState::Ringing(i);
                (c.ring.take(), c.queue)
            }
            None => return,
        };
        let mut ev = self.call_event("call.ringing", t, key, Some(i));
        ev.queue = queue.map(|q| QUEUES[q].0.to_string());
        self.push(ev);
        self.set_act(i, Activity::Ringing(key));
        let epoch = self.agents[i].epoch;
        let m = self.cfg.misconduct;
        let unruly = self.agents[i].unruly;
        let answer_in = if let Some(r) = forced {
            Some(r)
        } else if unruly && self.chance(m.ring_out) {
            None
        } else if unruly && self.chance(m.late_answer) {
            Some(self.rng.random_range(16 * SEC..=28 * SEC))
        } else {
            Some(1_500 + self.lognormal(3_000.0, 0.5, 500, 10 * SEC))
        };
        match answer_in {
            Some(d) => self.at(
                t.plus(d),
                Action::Answer {
                    agent: i,
                    epoch,
                    call: key,
                },
            ),
            None => {
                let d = if self.chance(0.5) {
                    self.rng.random_range(3 * SEC..=12 * SEC)
                } else {
                    RONA
                };
                self.at(
                    t.plus(d),
                    Action::NoAnswer {
                        agent: i,
                        epoch,
                        call: key,
                    },
                );
            }
        }
    }

    fn answer(&mut self, t: Timestamp, i: usize, epoch: u64, key: u64) {
        if self.agents[i].epoch != epoch || self.agents[i].act != Activity::Ringing(key) {
            return;
        }
        let forced = match self.calls.get_mut(&key) {
            Some(c) => {
                c.state = CallState::Talking(i);
                c.talk.take()
            }
            None => return,
        };
        let ev = self.call_event("call.answered", t, key, Some(i));
        self.push(ev);
        self.set_act(i, Activity::Talking(key));
        let talk = match forced {
            Some(d) => d,
            None => self.lognormal(170.0 * SEC as f64, 0.7, 15 * SEC, 40 * MIN),
        };
        self.at(t.plus(talk), Action::HangUp(key));
    }

    fn no_answer(&mut self, t: Timestamp, i: usize, epoch: u64, key: u64) {
        if self.agents[i].epoch != epoch || self.agents[i].act != Activity::Ringing(key) {
            return;
        }
        let ev = self.call_event("call.no_answer", t, key, Some(i));
        self.push(ev);
        if let Some(c) = self.calls.get_mut(&key) {
            c.state = CallState::Waiting;
            c.tried.push(i);
            // Back in line where it was: by the time it entered the queue.
            let at = c.queued_at;
            let pos = self
                .waiting
                .iter()
                .position(|k| self.calls.get(k).is_some_and(|o| o.queued_at > at))
                .unwrap_or(self.waiting.len());
            self.waiting.insert(pos, key);
        }
        self.become_idle(t, i);
        self.schedule_dispatch(t);
    }

    fn abandon(&mut self, t: Timestamp, key: u64) {
        let state = match self.calls.get(&key) {
            Some(c) => c.state,
            None => return,
        };
        match state {
            CallState::Waiting | CallState::Ringing(_) | CallState::Dialing(_) => {}
            CallState::Talking(_) => return,
        }
        let ev = self.call_event("call.abandoned", t, key, None);
        self.push(ev);
        self.calls.remove(&key);
        self.waiting.retain(|k| *k != key);
        if let CallState::Ringing(i) | CallState::Dialing(i) = state {
            self.become_idle(t, i);
        }
    }

    fn hang_up(&mut self, t: Timestamp, key: u64) {
        let Some(CallState::Talking(i)) = self.calls.get(&key).map(|c| c.state) else {
            return;
        };
        let campaign = self
            .calls
            .get(&key)
            .and_then(|c| c.campaign.map(|d| (c.id.clone(), d)));
        // Some platforms leave the agent off `call.ended`; the engine links it by the leg.
        let named = self.chance(0.85);
        let ev = self.call_event("call.ended", t, key, named.then_some(i));
        self.push(ev);
        let (unruly, overrun_p) = (self.agents[i].unruly, self.cfg.misconduct.acw_overrun);
        let wrap = if unruly && self.chance(overrun_p) {
            Some(self.rng.random_range(65 * SEC..=180 * SEC))
        } else if self.chance(0.1) {
            None
        } else {
            Some(self.lognormal(25.0 * SEC as f64, 0.4, 10 * SEC, 50 * SEC))
        };
        // Leaving after the shift, the agent logs out as the call ends: the logout check
        // allows `logout_grace` from the end of the call, not from the end of a wrap-up.
        let wrap = if self.roster.is_some() && self.agents[i].pending_logout {
            None
        } else {
            wrap
        };
        if let Some((id, Dial::Answer(code))) = campaign {
            self.agents[i].disposition = Some((id, code));
        }
        match wrap {
            Some(d) => {
                self.emit_state(t, i, "acw", None, Some(key));
                self.set_act(i, Activity::Acw);
                let epoch = self.agents[i].epoch;
                self.at(t.plus(d), Action::WrapUpDone { agent: i, epoch });
            }
            None => {
                self.dispose(t, i);
                self.become_idle(t, i);
            }
        }
        self.calls.remove(&key);
    }

    /// Carries out a logout or pause the agent asked for while busy. True when the agent
    /// has left the floor or gone on a pause.
    fn run_pending(&mut self, t: Timestamp, i: usize) -> bool {
        if self.agents[i].pending_logout {
            self.leave(t, i);
            return true;
        }
        if self.agents[i].pending_pause {
            self.agents[i].pending_pause = false;
            if let Some(plan) = self.plan_pause(t, i) {
                self.start_pause(t, i, plan);
                return true;
            }
            self.schedule_next_pause(t, i);
        }
        false
    }

    fn leave_acw(&mut self, t: Timestamp, i: usize) {
        self.dispose(t, i);
        if self.run_pending(t, i) {
            return;
        }
        self.emit_state(t, i, "ready", None, None);
        self.become_idle(t, i);
    }

    fn acw_without_call(&mut self, t: Timestamp, i: usize, dur: Millis) {
        self.emit_state(t, i, "acw", None, None);
        self.set_act(i, Activity::Acw);
        let epoch = self.agents[i].epoch;
        self.at(t.plus(dur), Action::WrapUpDone { agent: i, epoch });
    }

    fn outbound(&mut self, t: Timestamp, i: usize, epoch: u64) {
        if self.agents[i].act != Activity::Idle || self.agents[i].epoch != epoch {
            return;
        }
        if let Some(share) = self.cfg.outbound {
            self.dial(t, i, epoch, share);
            return;
        }
        // Inbound first: nobody dials out while callers wait.
        if !self.waiting.is_empty() {
            return;
        }
        let key = self.new_call(t, None);
        if let Some(c) = self.calls.get_mut(&key) {
            c.state = CallState::Dialing(i);
        }
        let ev = self.call_event("call.dialing", t, key, Some(i));
        self.push(ev);
        self.set_act(i, Activity::Dialing(key));
        let d = self.rng.random_range(4 * SEC..=25 * SEC);
        self.at(t.plus(d), Action::FarEnd(key));
    }

    fn far_end(&mut self, t: Timestamp, key: u64) {
        let Some(CallState::Dialing(i)) = self.calls.get(&key).map(|c| c.state) else {
            return;
        };
        if let Some(dial) = self.calls.get(&key).and_then(|c| c.campaign) {
            self.campaign_far_end(t, key, i, dial);
            return;
        }
        if self.chance(0.75) {
            if let Some(c) = self.calls.get_mut(&key) {
                c.state = CallState::Talking(i);
            }
            let ev = self.call_event("call.answered", t, key, Some(i));
            self.push(ev);
            self.set_act(i, Activity::Talking(key));
            let talk = self.lognormal(120.0 * SEC as f64, 0.7, 10 * SEC, 30 * MIN);
            self.at(t.plus(talk), Action::HangUp(key));
        } else {
            self.abandon(t, key);
        }
    }

    fn schedule_next_pause(&mut self, t: Timestamp, i: usize) {
        self.agents[i].pause_token += 1;
        let token = self.agents[i].pause_token;
        let gap = if self.agents[i].hog {
            self.rng.random_range(25 * MIN..=50 * MIN)
        } else if self.agents[i].unruly {
            self.rng.random_range(30 * MIN..=80 * MIN)
        } else {
            self.rng.random_range(45 * MIN..=110 * MIN)
        };
        self.at(t.plus(gap), Action::PauseDue { agent: i, token });
    }

    fn pause_due(&mut self, t: Timestamp, i: usize, token: u64) {
        if self.agents[i].pause_token != token {
            return;
        }
        match self.agents[i].act {
            Activity::Out | Activity::Paused | Activity::Gone => {}
            Activity::Idle => match self.plan_pause(t, i) {
                Some(plan) => self.start_pause(t, i, plan),
                None => self.schedule_next_pause(t, i),
            },
            _ => self.agents[i].pending_pause = true,
        }
    }

    /// Chooses the next pause: its reason, length and approval, with this agent's misconduct.
    /// `None` when a compliant agent has no break left today.
    fn plan_pause(&mut self, t: Timestamp, i: usize) -> Option<PausePlan> {
        let m = self.cfg.misconduct;
        let unruly = self.agents[i].unruly;
        let mut plan = PausePlan {
            reason: None,
            dur: 0,
            approval: None,
            lead_in: None,
        };
        if unruly && self.chance(m.no_reason) {
            plan.dur = self.rng.random_range(MIN..=6 * MIN);
            return Some(plan);
        }
        if unruly && self.chance(m.unknown_reason) {
            let k = self.rng.random_range(0..UNKNOWN_REASONS.len());
            plan.reason = Some(UNKNOWN_REASONS[k].to_string());
            plan.dur = self.rng.random_range(3 * MIN..=12 * MIN);
            return Some(plan);
        }
        let meal_due = t >= self.agents[i].next_meal;
        let reason = if meal_due {
            "meal"
        } else if self.agents[i].hog && self.chance(0.7) {
            "break"
        } else {
            let meeting = if unruly { m.meeting_share } else { 0.2 };
            let x: f64 = self.rng.random();
            let rest = (1.0 - meeting).max(0.0);
            match x {
                x if x < meeting => "meeting",
                x if x < meeting + rest * 0.7 => "break",
                x if x < meeting + rest * 0.85 => "training",
                _ => "technical",
            }
        };
        let overrun = unruly && self.chance(m.break_overrun);
        plan.dur = match reason {
            "meal" => {
                self.agents[i].next_meal = t.plus(8 * HOUR);
                if overrun {
                    self.rng.random_range(31 * MIN..=40 * MIN)
                } else {
                    self.rng.random_range(18 * MIN..=28 * MIN)
                }
            }
            "break" => {
                if overrun {
                    self.rng.random_range(16 * MIN..=25 * MIN)
                } else if self.agents[i].hog {
                    self.rng.random_range(11 * MIN..=14 * MIN)
                } else {
                    self.rng.random_range(7 * MIN..=13 * MIN)
                }
            }
            "meeting" => self.rng.random_range(10 * MIN..=30 * MIN),
            "training" => self.rng.random_range(20 * MIN..=45 * MIN),
            _ => self.rng.random_range(MIN..=4 * MIN),
        };
        if reason == "break" && !self.agents[i].hog {
            // Compliant agents keep within the daily allowance (60 min): at most 50 min of
            // breaks in any 24 hours, whatever the local day boundary.
            let used: Millis = self.agents[i]
                .breaks
                .iter()
                .filter(|(s, _)| t.since(*s) < 24 * HOUR)
                .map(|(_, d)| d)
                .sum();
            if used + plan.dur > 50 * MIN && !overrun {
                return None;
            }
        }
        if reason == "break" {
            // Only the last 24 hours matter: keep the list short on a run that never ends.
            self.agents[i]
                .breaks
                .retain(|(s, _)| t.since(*s) < 24 * HOUR);
            self.agents[i].breaks.push((t, plan.dur));
        }
        if reason == "meeting" && !(unruly && self.chance(m.unapproved)) {
            let delay = if self.chance(0.5) {
                0
            } else {
                self.rng.random_range(500..=4_000)
            };
            let mins = ((plan.dur + delay + MIN - 1) / MIN) as u32;
            let minutes = if unruly && self.chance(m.approval_overstay) {
                let short = self.rng.random_range(3..=10);
                (mins.saturating_sub(short)).max(1)
            } else {
                mins + self.rng.random_range(2..=5)
            };
            plan.approval = Some((delay, minutes));
        }
        if !unruly && self.chance(0.15) {
            plan.lead_in = Some(self.rng.random_range(500..=3_000));
        }
        plan.reason = Some(reason.to_string());
        Some(plan)
    }

    fn start_pause(&mut self, t: Timestamp, i: usize, plan: PausePlan) {
        self.agents[i].pause_token += 1;
        let lead = plan.lead_in.unwrap_or(0);
        if let Some((0, minutes)) = plan.approval {
            // The lead approved before the agent left: the grant comes first.
            let reason = plan.reason.clone().unwrap_or_default();
            self.handle(
                t,
                Action::Approval {
                    agent: i,
                    reason,
                    minutes,
                },
            );
        }
        match (&plan.reason, plan.lead_in) {
            (Some(r), Some(_)) => {
                self.emit_state(t, i, "not_ready", None, None);
                self.set_act(i, Activity::Paused);
                let epoch = self.agents[i].epoch;
                let reason = r.clone();
                self.at(
                    t.plus(lead),
                    Action::PauseReason {
                        agent: i,
                        epoch,
                        reason,
                    },
                );
            }
            (r, _) => {
                self.emit_state(t, i, "not_ready", r.clone(), None);
                self.set_act(i, Activity::Paused);
            }
        }
        if let Some((delay, minutes)) = plan.approval {
            if delay > 0 {
                let reason = plan.reason.clone().unwrap_or_default();
                self.at(
                    t.plus(lead + delay),
                    Action::Approval {
                        agent: i,
                        reason,
                        minutes,
                    },
                );
            }
        }
        let epoch = self.agents[i].epoch;
        self.at(
            t.plus(lead + plan.dur),
            Action::PauseOver { agent: i, epoch },
        );
    }

    fn end_pause(&mut self, t: Timestamp, i: usize) {
        if self.agents[i].pending_logout {
            self.leave(t, i);
            return;
        }
        self.emit_state(t, i, "ready", None, None);
        self.schedule_next_pause(t, i);
        self.become_idle(t, i);
    }

    /// The end of the run: calls still up end, callers still waiting hang up, everyone
    /// logs out.
    fn close(&mut self, t: Timestamp) {
        let calls = std::mem::take(&mut self.calls);
        for call in calls.values() {
            let kind = match call.state {
                CallState::Talking(_) => "call.ended",
                _ => "call.abandoned",
            };
            let mut ev = SimEvent::new(kind, t);
            ev.call = Some(call.id.clone());
            self.push(ev);
        }
        self.waiting.clear();
        for i in 0..self.agents.len() {
            if self.agents[i].act != Activity::Out {
                self.dispose(t, i);
                self.logout(t, i);
            }
        }
        self.agenda.clear();
        self.finished = true;
    }
}

impl Iterator for Generator {
    type Item = SimEvent;

    fn next(&mut self) -> Option<SimEvent> {
        loop {
            if let Some(ev) = self.out.pop_front() {
                return Some(ev);
            }
            if self.finished {
                return None;
            }
            let ((t, _, _), action) = self.agenda.pop_first()?;
            self.handle(t, action);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    const T0: Timestamp = Timestamp(1_795_827_600_000);

    fn run(cfg: SimConfig) -> Vec<SimEvent> {
        Generator::new(cfg, T0).collect()
    }

    fn floor(misconduct: Misconduct, seed: u64) -> SimConfig {
        let mut cfg = SimConfig::new(20, 3, seed);
        cfg.duration = Some(8 * HOUR);
        cfg.misconduct = misconduct;
        cfg
    }

    #[test]
    fn seq_is_consecutive_and_time_never_goes_back() {
        let evs = run(floor(Misconduct::modest(), 1));
        for (k, e) in evs.iter().enumerate() {
            assert_eq!(e.seq, k as u64 + 1);
        }
        assert!(evs.windows(2).all(|w| w[0].ts <= w[1].ts));
    }

    #[test]
    fn compliant_agents_answer_within_rings_and_wrap_up_within_a_minute() {
        let evs = run(floor(Misconduct::none(), 2));
        let mut ringing: BTreeMap<(String, String), Timestamp> = BTreeMap::new();
        let mut acw: BTreeMap<String, Timestamp> = BTreeMap::new();
        let (mut rings, mut wraps) = (0, 0);
        for e in &evs {
            let agent = e.agent.clone().unwrap_or_default();
            match e.kind {
                "call.ringing" => {
                    ringing.insert((e.call.clone().unwrap_or_default(), agent), e.ts);
                }
                "call.answered" => {
                    if let Some(s) = ringing.remove(&(e.call.clone().unwrap_or_default(), agent)) {
                        assert!(e.ts.since(s) <= 12 * SEC, "ring of {:?}", e);
                        rings += 1;
                    }
                }
                "call.no_answer" => panic!("a compliant agent let a call ring out: {e:?}"),
                "agent.state" => {
                    if let Some(s) = acw.remove(&agent) {
                        assert!(e.ts.since(s) <= 50 * SEC, "wrap-up before {e:?}");
                        wraps += 1;
                    }
                    if e.state == Some("acw") {
                        assert!(e.call.is_some(), "wrap-up without a call: {e:?}");
                        acw.insert(agent, e.ts);
                    }
                }
                _ => {}
            }
        }
        assert!(
            rings > 500 && wraps > 500,
            "{rings} rings, {wraps} wrap-ups"
        );
    }

    #[test]
    fn ring_no_answer_moves_the_call_to_another_agent() {
        let evs = run(floor(Misconduct::unruly(), 3));
        let mut moved = 0;
        for (k, e) in evs.iter().enumerate() {
            if e.kind != "call.no_answer" {
                continue;
            }
            let next = evs[k + 1..]
                .iter()
                .find(|n| n.call == e.call && n.kind != "call.queued");
            match next {
                Some(n) if n.kind == "call.ringing" => {
                    assert_ne!(n.agent, e.agent, "rang the same agent again");
                    moved += 1;
                }
                Some(n) => assert_eq!(n.kind, "call.abandoned", "after {e:?}: {n:?}"),
                None => {}
            }
        }
        assert!(moved > 0, "no call moved on after a ring-no-answer");
    }

    #[test]
    fn meetings_are_approved_by_the_team_lead_within_the_grace() {
        let evs = run(floor(Misconduct::none(), 4));
        let meetings: Vec<&SimEvent> = evs
            .iter()
            .filter(|e| e.reason.as_deref() == Some("meeting") && e.kind == "agent.state")
            .collect();
        assert!(!meetings.is_empty());
        for m in meetings {
            let grant = evs.iter().find(|g| {
                g.kind == "approval.granted"
                    && g.agent == m.agent
                    && g.ts >= m.ts.plus(-4 * SEC)
                    && g.ts <= m.ts.plus(4 * SEC)
            });
            let g = grant.unwrap_or_else(|| panic!("no approval for {m:?}"));
            assert!(g
                .by
                .as_deref()
                .is_some_and(|b| b.starts_with("lead-hotline-")));
        }
    }

    #[test]
    fn the_run_ends_with_everyone_logged_out() {
        let rostered =
            floor(Misconduct::unruly(), 5).with_roster(Roster::handover(20, 2, 3 * HOUR));
        for cfg in [floor(Misconduct::modest(), 5), rostered] {
            let evs = run(cfg);
            let end = T0.plus(8 * HOUR);
            let last = evs.last().map(|e| e.ts);
            assert!(last.is_some_and(|t| t <= end));
            let mut logged_in = std::collections::BTreeSet::new();
            for e in &evs {
                match e.kind {
                    "agent.login" => {
                        assert!(logged_in.insert(e.agent.clone()), "twice: {e:?}");
                    }
                    "agent.logout" => {
                        assert!(logged_in.remove(&e.agent), "not logged in: {e:?}");
                    }
                    _ => {}
                }
            }
            assert!(logged_in.is_empty(), "still logged in: {logged_in:?}");
        }
    }

    #[test]
    fn roster_pairs_agents_at_seats_and_staggers_the_handovers() {
        let r = Roster::handover(9, 2, 4 * HOUR);
        assert_eq!(r.seats.len(), 5);
        assert_eq!(r.agents(), 9);
        assert_eq!(r.seats[0].rotation, [Some(0), Some(5)]);
        // Nine agents: the last seat is empty every other shift.
        assert_eq!(r.seats[4].rotation, [Some(4), None]);
        let ends: Vec<Millis> = r.seats.iter().map(|s| s.first.1).collect();
        assert_eq!(
            ends,
            [250, 265, 280, 295, 250].map(|m| m * MIN),
            "first shifts start 10 minutes in and end in four waves"
        );
        // The empty turn: agent 5's seat is covered by a-0005 and nobody else.
        let evs = run(floor(Misconduct::none(), 6).with_roster(r));
        let seat5: Vec<&SimEvent> = evs
            .iter()
            .filter(|e| e.position.as_deref() == Some("seat-005"))
            .collect();
        assert!(!seat5.is_empty());
        assert!(seat5.iter().all(|e| e.agent.as_deref() == Some("a-0005")));
    }

    #[test]
    fn demo_roster_puts_every_seat_on_shift_and_stages_three_handovers() {
        let r = Roster::demo(24);
        assert_eq!(r.agents(), 72);
        assert!(r.seats.iter().all(|s| s.first.0 < 0 && s.first.1 > 0));
        let staged: Vec<(usize, Millis)> = r
            .seats
            .iter()
            .enumerate()
            .filter(|(_, s)| s.staged.is_some())
            .map(|(k, s)| (k, s.first.1))
            .collect();
        assert_eq!(staged, [(5, 2 * MIN), (6, 3 * MIN), (7, 4 * MIN)]);
        assert!(r
            .seats
            .iter()
            .filter(|s| s.staged.is_none())
            .all(|s| s.first.1 >= 2 * HOUR));
        // Too few seats to stage: nothing staged.
        assert!(Roster::demo(5).seats.iter().all(|s| s.staged.is_none()));
    }

    #[test]
    fn every_connected_campaign_call_gets_its_disposition_after_it_ends() {
        let mut cfg = floor(Misconduct::unruly(), 7);
        cfg.outbound = Some(0.6);
        let evs = run(cfg);
        let mut ended: BTreeMap<String, (Timestamp, Option<String>)> = BTreeMap::new();
        let mut answered = std::collections::BTreeSet::new();
        let mut dialed = std::collections::BTreeSet::new();
        let mut disposed = 0;
        for e in &evs {
            let call = e.call.clone().unwrap_or_default();
            match e.kind {
                "call.dialing" => {
                    dialed.insert(call);
                }
                "call.answered" if dialed.contains(&call) => {
                    answered.insert((call, e.agent.clone()));
                }
                "call.ended" => {
                    ended.insert(call, (e.ts, e.agent.clone()));
                }
                "call.disposition" => {
                    assert!(answered.contains(&(call.clone(), e.agent.clone())), "{e:?}");
                    let (at, _) = ended.get(&call).unwrap_or_else(|| panic!("{e:?}"));
                    assert!(e.ts >= *at, "disposed before the end: {e:?}");
                    assert!(["sale", "no_sale", "callback", "wrong_number"]
                        .contains(&e.code.unwrap_or_default()));
                    disposed += 1;
                }
                _ => {}
            }
        }
        assert!(disposed > 100, "{disposed} dispositions");
    }
}
