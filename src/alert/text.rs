//! The words of an alert: summary and description of a violation in the floor's language
//! (`ui.language`: `zh-CN`, the default, or `en`).
//!
//! Owns: the sentences. Must not: carry caller numbers or anything else about the customer;
//! an alert names the agent, team, call id, rule and limit only.

use crate::engine::{Kind, Violation};
use crate::time::format_duration;

/// The language alerts are written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Language {
    Zh,
    En,
}

impl Language {
    /// `ui.language` (`"zh-CN"` or `"en"`; anything else reads as Chinese, the default).
    pub fn from_config(s: &str) -> Language {
        if s == "en" {
            Language::En
        } else {
            Language::Zh
        }
    }
}

/// One line for the lead's phone: who, what, which limit.
pub fn summary(lang: Language, v: &Violation) -> String {
    let agent = &*v.agent;
    let call = v.call.as_deref().unwrap_or("-");
    let reason = v.reason.as_deref().unwrap_or("-");
    let limit = format_duration(v.evidence.limit_ms);
    let by = v.evidence.recorded_by.as_deref().unwrap_or("-");
    match lang {
        Language::Zh => match &v.kind {
            Kind::Late => format!("坐席 {agent} 来电振铃超过 {limit} 未接听（来电铃响3声内必须应答），通话 {call}"),
            Kind::Missed => format!("坐席 {agent} 振铃未接听（振铃无应答），通话 {call}"),
            Kind::PerBreak => format!("坐席 {agent} {reason} 超时（单次上限 {limit}）"),
            Kind::DailyAllowance => format!("坐席 {agent} 今日小休累计超过 {limit}"),
            Kind::NoReason => format!("坐席 {agent} 无故暂停（未选择原因）"),
            Kind::UnknownReason => format!("坐席 {agent} 以未定义的原因 {reason} 暂停"),
            Kind::Unapproved => format!("坐席 {agent} 未经批准以 {reason} 暂停"),
            Kind::ApprovalExpired => format!("坐席 {agent} 的 {reason} 批准已到期，仍在暂停"),
            Kind::AcwWithoutCall => format!("坐席 {agent} 无通话进入事后工作"),
            Kind::AcwOverrun => format!("坐席 {agent} 事后工作超过 {limit}"),
            Kind::LateLogin => format!("坐席 {agent} 班次已开始仍未登录（上班后立即登录服务系统），请安排顶岗"),
            Kind::LeftBeforeRelief => format!("坐席 {agent} 交班人员未到即退出系统（交班人员未到不能离开岗位）"),
            Kind::NotLoggedOut => format!("坐席 {agent} 下班后未退出系统（下班后终端必须按正常程序退出系统）"),
            Kind::Discipline(item) => format!("坐席 {agent} 违反现场纪律（{item}），由 {by} 记录"),
        },
        Language::En => match &v.kind {
            Kind::Late => format!("Agent {agent} let call {call} ring past {limit} without answering (answer within 3 rings)"),
            Kind::Missed => format!("Agent {agent} did not answer call {call} (ring, no answer)"),
            Kind::PerBreak => format!("Agent {agent} is over the {reason} limit of {limit}"),
            Kind::DailyAllowance => format!("Agent {agent} is over today's break allowance of {limit}"),
            Kind::NoReason => format!("Agent {agent} paused without a reason"),
            Kind::UnknownReason => format!("Agent {agent} paused with the unknown reason {reason}"),
            Kind::Unapproved => format!("Agent {agent} paused for {reason} without approval"),
            Kind::ApprovalExpired => format!("Agent {agent}'s approval for {reason} has ended; still paused"),
            Kind::AcwWithoutCall => format!("Agent {agent} went into wrap-up without a call"),
            Kind::AcwOverrun => format!("Agent {agent} has been in wrap-up longer than {limit}"),
            Kind::LateLogin => format!("Agent {agent} has not logged in although the shift has started: arrange cover"),
            Kind::LeftBeforeRelief => format!("Agent {agent} logged out before the relief arrived"),
            Kind::NotLoggedOut => format!("Agent {agent} is still logged in after the shift"),
            Kind::Discipline(item) => format!("Agent {agent}: floor discipline ({item}) recorded by {by}"),
        },
    }
}

/// The longer text: rule, limit, how long the episode had lasted when raised, points, and
/// who is to act.
pub fn description(lang: Language, v: &Violation, lead: Option<&str>) -> String {
    let limit = &v.evidence.limit;
    let measured = format_duration(v.evidence.raised_after_ms);
    let points = v.points;
    let team = &*v.team;
    match lang {
        Language::Zh => {
            let who = lead.map_or_else(
                || format!("班组 {team}"),
                |l| format!("组长 {l}（班组 {team}）"),
            );
            format!(
                "规则 {rule}/{kind}：限值 {limit}，触发时已持续 {measured}，发生于 {at}。扣 {points} 分。请{who}立即处理。",
                rule = v.rule.as_str(),
                kind = v.kind.as_str(),
                at = v.at,
            )
        }
        Language::En => {
            let who = lead.map_or_else(
                || format!("team {team}"),
                |l| format!("team lead {l} (team {team})"),
            );
            format!(
                "Rule {rule}/{kind}: limit {limit}, raised after {measured}, at {at}. Demerit points: {points}. For {who} to act now.",
                rule = v.rule.as_str(),
                kind = v.kind.as_str(),
                at = v.at,
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn late() -> Violation {
        crate::alert::sample_violation(1, Kind::Late, Timestamp(1_764_321_317_000))
    }

    #[test]
    fn every_kind_has_words_in_both_languages() {
        let mut v = late();
        v.reason = Some("break".into());
        let kinds = Kind::ALL
            .into_iter()
            .chain([Kind::Discipline("mobile_phone".into())]);
        for kind in kinds {
            v.rule = kind.rule();
            v.kind = kind.clone();
            for lang in [Language::Zh, Language::En] {
                let s = summary(lang, &v);
                assert!(s.contains("a-0042"), "{kind:?} {lang:?}: {s}");
                let d = description(lang, &v, Some("zhang.wei"));
                assert!(d.contains(kind.as_str()) && d.contains("zhang.wei"), "{d}");
            }
        }
    }

    #[test]
    fn late_ring_reads_as_written_by_hand() {
        let v = late();
        assert_eq!(
            summary(Language::Zh, &v),
            "坐席 a-0042 来电振铃超过 15s 未接听（来电铃响3声内必须应答），通话 c-77"
        );
        assert_eq!(
            description(Language::En, &v, None),
            "Rule ring_answer/late: limit 3 rings x 5s = 15s, raised after 15s, at \
             2025-11-28T09:15:17.000Z. Demerit points: 1. For team hotline-1 to act now."
        );
        assert_eq!(Language::from_config("en"), Language::En);
        assert_eq!(Language::from_config("zh-CN"), Language::Zh);
    }
}
