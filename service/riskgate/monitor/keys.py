"""Redis keys of the monitor, under the same global hash tag as the gate's global records (one
slot on Redis Cluster: a trip, its breaker record, its alert and its audit entry are one
script). The accounts' streams it follows are in the shards' tags (store/keys.py)."""

from __future__ import annotations

from riskgate.store.keys import Keys


class MonitorKeys(Keys):
    def __init__(self, prefix: str, shard_index: int = 0, shard_count: int = 1) -> None:
        super().__init__(prefix, shard_index, shard_count)
        tag = "{" + prefix + "}"
        # Rules by id, stored {"v": version, "d": rule} like every versioned record.
        self.rules = f"{tag}:rules"
        # Rule changes are published here, not on the gate's change channel: the gate has no
        # use for them and would log every one as an unknown kind.
        self.rule_changes = f"{tag}:rule_changes"
        self.lease = f"{tag}:monitor:lease"
        # Alerts by id (JSON), every event of every alert in order, and the id counter.
        self.alerts = f"{tag}:alerts"
        self.alert_events = f"{tag}:alert_events"
        self.alert_seq = f"{tag}:alert_seq"
        # Open episodes ("<rule>\x1f<symbol>" -> the alert and the version of the action):
        # a rule fired there and the market has not been calm for its cooldown since.
        self.episodes = f"{tag}:monitor:episodes"
        # Open account episodes ("<rule>\x1f<account>\x1f<symbol>", symbol "" for a rule
        # about the whole account), and the stream the liquidation engine reads candidates from.
        self.account_episodes = f"{tag}:monitor:account_episodes"
        self.liquidation_candidates = f"{tag}:liquidation_candidates"
        # Which open episodes hold a breaker or an account's close-only ("breaker:<symbol>",
        # "controls:<account>" -> {"v": version written, "h": {episode: state wanted}}).
        self.holds = f"{tag}:monitor:holds"
        # Linked accounts (one beneficial owner): account -> {"v": version, "d": its group}.
        self.account_groups = f"{tag}:account_groups"
        # Funding rates by symbol, stored {"v": version, "d": rate} and published on
        # rule_changes as kind "funding"; the funding rules' open episodes ("<rule>\x1f<symbol>",
        # symbol "" for the platform's net flow), apart from the mark rules' own.
        self.funding = f"{tag}:funding"
        self.funding_episodes = f"{tag}:monitor:funding_episodes"
        # ---- Stress tests and the insurance fund ----
        # The insurance fund's balance, field "fund": {"v": version, "d": the record}, published
        # on rule_changes as kind "insurance".
        self.insurance_fund = f"{tag}:insurance_fund"

    # ---- Mark history (history.py) ----
    def mark_bars(self, symbol: str) -> str:
        """A symbol's minute bars (sorted set by minute), capped in time."""
        return f"{self._tag}:mark_bars:{symbol}"

    def mark_daily(self, symbol: str) -> str:
        """A symbol's close per UTC day (sorted set by day number), capped in count."""
        return f"{self._tag}:mark_daily:{symbol}"


def episode_field(rule_id: str, symbol: str) -> str:
    return f"{rule_id}\x1f{symbol}"


def account_episode_field(rule_id: str, account_id: str, symbol: str) -> str:
    return f"{rule_id}\x1f{account_id}\x1f{symbol}"
