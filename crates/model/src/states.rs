//! Every domain state as an enum: what a campaign, its members, its channel and offer can be, and
//! a customer's tier, RFM class and lifecycle stage. Each serialises as its name (the text stored
//! in the metastore and the warehouse and sent over the API), and `parse` reads that text back.

use serde::{Deserialize, Serialize};

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:tt),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        pub enum $name { $($(#[$vm])* #[serde(rename = $s)] $v),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$v),+];
            /// The stored and transmitted name.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$v => $s),+ }
            }
            /// The value of a stored name.
            pub fn parse(s: &str) -> Option<$name> {
                match s { $($s => Some($name::$v),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// Where a campaign is in its life: draft → running ⇄ paused → completed / cancelled.
    CampaignStatus {
        Draft = "draft",
        Running = "running",
        Paused = "paused",
        Completed = "completed",
        Cancelled = "cancelled",
    }
);

named_enum!(
    /// What an operator can do to a campaign after its launch.
    CampaignAction {
        Pause = "pause",
        Resume = "resume",
        Complete = "complete",
        Cancel = "cancel",
    }
);

impl CampaignAction {
    /// The states this action may leave, and the state it leads to.
    pub fn moves(self) -> (&'static [CampaignStatus], CampaignStatus) {
        use CampaignStatus as S;
        match self {
            CampaignAction::Pause => (&[S::Running], S::Paused),
            CampaignAction::Resume => (&[S::Paused], S::Running),
            CampaignAction::Complete => (&[S::Running, S::Paused], S::Completed),
            CampaignAction::Cancel => (&[S::Draft, S::Running, S::Paused], S::Cancelled),
        }
    }
}

named_enum!(
    /// One member's message: planned (will be sent), sent, suppressed (held by a pause or a
    /// cancel), capped (the frequency cap left no day in the window), not_sent (holdouts).
    MemberStatus {
        Planned = "planned",
        Sent = "sent",
        Suppressed = "suppressed",
        Capped = "capped",
        NotSent = "not_sent",
    }
);

named_enum!(
    /// How a campaign reaches people.
    Channel {
        /// A WeChat subscription message.
        Wechat = "wechat",
        Sms = "sms",
        Push = "push",
    }
);

named_enum!(
    /// What a campaign offers.
    OfferKind {
        /// A coupon on the customer's own most bought item.
        FavouriteItem = "favourite_item",
        AmountOff = "amount_off",
        FreeItem = "free_item",
    }
);

named_enum!(
    /// The chain's four tiers, from the R, F and M scores.
    Tier {
        /// R, F and M all 4 or 5.
        Core = "核心客户",
        /// R and F at least 3.
        Active = "活跃客户",
        /// R at least 3, or M at least 4.
        Opportunity = "机会客户",
        /// Everyone else.
        DormantOrNew = "沉睡/新客户",
    }
);

named_enum!(
    /// The 8 RFM classes (high or low R, F and M against the group's means), most valuable first.
    RfmClass {
        ImportantValue = "重要价值客户",
        ImportantDevelop = "重要发展客户",
        ImportantKeep = "重要保持客户",
        ImportantRetain = "重要挽留客户",
        GeneralValue = "一般价值客户",
        GeneralDevelop = "一般发展客户",
        GeneralKeep = "一般保持客户",
        GeneralRetain = "一般挽留客户",
    }
);

impl RfmClass {
    /// The class of high (true) or low recency, frequency and monetary value.
    pub fn of(r_high: bool, f_high: bool, m_high: bool) -> RfmClass {
        use RfmClass as C;
        match (r_high, f_high, m_high) {
            (true, true, true) => C::ImportantValue,
            (true, false, true) => C::ImportantDevelop,
            (false, true, true) => C::ImportantKeep,
            (false, false, true) => C::ImportantRetain,
            (true, true, false) => C::GeneralValue,
            (true, false, false) => C::GeneralDevelop,
            (false, true, false) => C::GeneralKeep,
            (false, false, false) => C::GeneralRetain,
        }
    }
}

named_enum!(
    /// Where a customer is in their life with the chain.
    Lifecycle {
        /// First purchase within 30 days.
        New = "new",
        /// The last purchase ended a gap of over 120 days and is within 60 days.
        WonBack = "won_back",
        /// No purchase for 180 days, or P(alive) below 0.3.
        Dormant = "dormant",
        /// More purchases in the last 90 days than in the 90 before.
        Growing = "growing",
        /// Fewer.
        Declining = "declining",
        Mature = "mature",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_text_and_json() {
        for s in CampaignStatus::ALL {
            assert_eq!(CampaignStatus::parse(s.as_str()), Some(*s));
            assert_eq!(serde_json::to_string(s).unwrap(), format!("\"{s}\""));
        }
        assert_eq!(MemberStatus::NotSent.as_str(), "not_sent");
        // The stored names are the serde names, Chinese ones included.
        for t in Tier::ALL {
            assert_eq!(
                serde_json::to_value(t).unwrap(),
                serde_json::json!(t.as_str())
            );
            assert_eq!(Tier::parse(t.as_str()), Some(*t));
        }
        assert_eq!(
            serde_json::from_value::<RfmClass>(serde_json::json!("重要挽留客户")).unwrap(),
            RfmClass::ImportantRetain
        );
        assert_eq!(RfmClass::of(false, false, true), RfmClass::ImportantRetain);
        assert_eq!(Lifecycle::parse("won_back"), Some(Lifecycle::WonBack));
        assert_eq!(
            serde_json::from_str::<OfferKind>("\"favourite_item\"").unwrap(),
            OfferKind::FavouriteItem
        );
        assert!(serde_json::from_str::<Channel>("\"fax\"").is_err());
        assert_eq!(Channel::parse("fax"), None);
    }

    #[test]
    fn only_the_moves_a_campaigns_life_allows() {
        use CampaignStatus as S;
        let (from, to) = CampaignAction::Resume.moves();
        assert_eq!((from, to), (&[S::Paused][..], S::Running));
        for a in CampaignAction::ALL {
            let (from, to) = a.moves();
            assert!(!from.contains(&to), "{a} stays where it is");
            assert!(!from.contains(&S::Completed) && !from.contains(&S::Cancelled));
        }
    }
}
