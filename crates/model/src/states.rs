//! Every domain state as an enum: what a campaign, its members, its channel and offer can be.
//! Each serialises as its snake_case name (the text stored in the metastore and sent over the
//! API), and `parse` reads that text back.

use serde::{Deserialize, Serialize};

macro_rules! named_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $v:ident = $s:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($(#[$vm])* $v),+ }

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
