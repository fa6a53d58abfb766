//! The outbound campaign (外呼) of the simulated floor: agents dial from their idle time, the
//! far end answers or not, and every connected call ends with the agent's disposition, the
//! odd callback turning into a sale later.
//!
//! The numbers are a telemarketing floor's: about 42 % of attempts connect (the rest ring
//! out or are busy or unreachable), and about 12 % of connected calls end in a sale (9 %
//! at once, and 15 % of the 22 % callbacks later).

use rand::Rng;

use super::{Action, Activity, CallState, Generator, SimEvent, MIN, SEC};
use crate::time::{Millis, Timestamp};

/// What one attempt takes on average (the dialing, and for a connected call the talk and
/// the wrap-up), for the gap between attempts that gives the asked share of idle time.
const ATTEMPT_MS: f64 = 75.0 * SEC as f64;
/// Share of attempts the far end answers.
const CONNECT: f64 = 0.42;
/// Share of attempts that ring out; the rest are busy or unreachable.
const NO_ANSWER: f64 = 0.40;
/// Dispositions of connected calls, with their shares.
const DISPOSITIONS: [(&str, f64); 4] = [
    ("sale", 0.09),
    ("callback", 0.22),
    ("wrong_number", 0.10),
    ("no_sale", 0.59),
];
/// Share of callbacks that become a sale later the same shift.
const CALLBACK_SALE: f64 = 0.15;

/// How the far end takes a campaign call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Dial {
    /// Answered; the call will end with this disposition.
    Answer(&'static str),
    /// Rings until the agent gives up (`call.ended` unanswered).
    NoAnswer,
    /// Busy or unreachable (`call.abandoned`).
    Busy,
}

impl Generator {
    /// Plans the agent's next attempt: a gap such that dialing takes about `share` of the
    /// time the agent would otherwise sit idle.
    pub(super) fn plan_dial(&mut self, t: Timestamp, i: usize, epoch: u64, share: f64) {
        if share <= 0.0 {
            return;
        }
        let share = share.min(1.0);
        let d = 2 * SEC + self.exp(ATTEMPT_MS * (1.0 - share) / share);
        self.at(t.plus(d), Action::Outbound { agent: i, epoch });
    }

    /// The agent dials, unless callers are waiting (inbound first).
    pub(super) fn dial(&mut self, t: Timestamp, i: usize, epoch: u64, share: f64) {
        if self.agents[i].handing_over {
            return;
        }
        if !self.waiting.is_empty() {
            self.plan_dial(t, i, epoch, share);
            return;
        }
        let x: f64 = self.rng.random();
        let (dial, after) = if x < CONNECT {
            let code = self.pick_disposition();
            (
                Dial::Answer(code),
                self.rng.random_range(6 * SEC..=20 * SEC),
            )
        } else if x < CONNECT + NO_ANSWER {
            (Dial::NoAnswer, self.rng.random_range(25 * SEC..=45 * SEC))
        } else {
            (Dial::Busy, self.rng.random_range(3 * SEC..=10 * SEC))
        };
        let key = self.new_call(t, None);
        if let Some(c) = self.calls.get_mut(&key) {
            c.state = CallState::Dialing(i);
            c.campaign = Some(dial);
        }
        let ev = self.call_event("call.dialing", t, key, Some(i));
        self.push(ev);
        self.set_act(i, Activity::Dialing(key));
        self.at(t.plus(after), Action::FarEnd(key));
    }

    fn pick_disposition(&mut self) -> &'static str {
        let x: f64 = self.rng.random();
        let mut acc = 0.0;
        for (code, share) in DISPOSITIONS {
            acc += share;
            if x < acc {
                return code;
            }
        }
        "no_sale"
    }

    /// The far end of a campaign call answers, rings out or is busy.
    pub(super) fn campaign_far_end(&mut self, t: Timestamp, key: u64, i: usize, dial: Dial) {
        match dial {
            Dial::Answer(code) => {
                if let Some(c) = self.calls.get_mut(&key) {
                    c.state = CallState::Talking(i);
                }
                let ev = self.call_event("call.answered", t, key, Some(i));
                self.push(ev);
                self.set_act(i, Activity::Talking(key));
                let talk = self.talk_for(code);
                self.at(t.plus(talk), Action::HangUp(key));
            }
            Dial::NoAnswer => {
                let ev = self.call_event("call.ended", t, key, Some(i));
                self.push(ev);
                self.calls.remove(&key);
                self.become_idle(t, i);
            }
            Dial::Busy => self.abandon(t, key),
        }
    }

    /// Talk time of a connected call by how it ends: a sale takes a pitch and an order.
    fn talk_for(&mut self, code: &str) -> Millis {
        match code {
            "wrong_number" => self.rng.random_range(8 * SEC..=30 * SEC),
            "sale" => self.lognormal(320.0 * SEC as f64, 0.4, 2 * MIN, 25 * MIN),
            "callback" => self.lognormal(140.0 * SEC as f64, 0.5, 40 * SEC, 15 * MIN),
            _ => self.lognormal(50.0 * SEC as f64, 0.6, 15 * SEC, 10 * MIN),
        }
    }

    /// Enters the disposition of the campaign call the agent just finished, if any.
    pub(super) fn dispose(&mut self, t: Timestamp, i: usize) {
        let Some((call, code)) = self.agents[i].disposition.take() else {
            return;
        };
        self.push_disposition(t, i, call.clone(), code);
        if code == "callback" && self.chance(CALLBACK_SALE) {
            let d = self.rng.random_range(10 * MIN..=90 * MIN);
            self.at(t.plus(d), Action::Redisposition { agent: i, call });
        }
    }

    /// A callback became a sale: the agent changes the call's disposition, if still there.
    pub(super) fn redisposition(&mut self, t: Timestamp, i: usize, call: String) {
        if matches!(self.agents[i].act, Activity::Out | Activity::Gone) {
            return;
        }
        self.push_disposition(t, i, call, "sale");
    }

    fn push_disposition(&mut self, t: Timestamp, i: usize, call: String, code: &'static str) {
        let mut ev: SimEvent = self.agent_event("call.disposition", t, i);
        ev.call = Some(call);
        ev.code = Some(code);
        self.push(ev);
    }
}
