"""Settings of the semantic stage (turns, annotations, analytics), defaults only."""

from __future__ import annotations

from dataclasses import dataclass

# Support-call defaults. Multi-word terms match as phrases; a determiner in a term
# ("a", "the", "your", ...) matches any determiner, so "speak to a manager" also fires on
# "speak to your manager". Bare "manager" and "bill" are left out on purpose: neutral
# support talk says "account manager" and "your latest bill" all the time.
_ESCALATION = (
    "speak to a manager,talk to a manager,speak with a manager,get me a manager,"
    "speak to a supervisor,talk to a supervisor,speak with a supervisor,supervisor,"
    "escalate,complaint,complain,unacceptable,ridiculous,outrageous,lawyer,legal action,"
    "sue,furious,fed up,waste of my time,terrible service"
)
_CHURN_RISK = (
    "cancel,terminate,close my account,close the account,end my contract,unsubscribe,"
    "switch provider,switch to another,another provider,competitor,not renew,"
    "take my business elsewhere,go elsewhere,leave your service"
)
_PRICING = (
    "price,cost,expensive,cheaper,too much,discount,fee,charge,overcharge,refund,"
    "money back,afford,budget"
)


@dataclass(frozen=True, slots=True)
class SemanticSettings:
    """How final segments become turns, annotations and analytics (STREAMSCRIBE_SEMANTIC_*)."""

    # Silence that ends a turn, and audio time after which a speaker's turn is final.
    turn_gap_s: float = 2.0
    # How far one track's finals may trail another's: each channel's final comes when
    # that channel pauses and its decode is done, so a speaker may look silent at an
    # audio time the other track has reached while their last final is still decoding.
    # A turn is closed on audio time only with this margin, unless its own track was
    # heard that far (its finals, or the position every track has reached).
    track_lag_s: float = 2.0
    # LLM context window: the last N final turns within the last T seconds.
    context_turns: int = 10
    context_seconds: float = 120.0
    # A turn that starts this much before the other speaker's turn ends interrupts it.
    # 0.5 s: floor transfers overlap by up to a few hundred ms in ordinary conversation,
    # and tiny.en's word timestamps (which set segment bounds) err by 0.1-0.3 s, so a
    # smaller tolerance counts normal hand-overs; a deliberate overlap lasts ~1 s or more.
    interruption_tolerance_s: float = 0.5
    # Comma-separated terms per risk tag, matched on word boundaries and lemmas.
    risk_escalation: str = _ESCALATION
    risk_churn_risk: str = _CHURN_RISK
    risk_pricing: str = _PRICING
    max_keywords: int = 5
    # A semantic_update for every partial turn too: risk tags and questions then reach
    # consumers with the segment that carries them, not `turn_gap_s` later at finality.
    interim_updates: bool = True
    # At most one interim analytics snapshot per this much audio time.
    analytics_interval_s: float = 1.0
    # Keywords through a local sentence-embedding model (extra dependencies).
    embeddings: bool = False
    embedding_model: str = ""

    def risk_terms(self) -> dict[str, tuple[str, ...]]:
        """Risk tag -> its configured terms, in tag order."""
        lists = {
            "escalation": self.risk_escalation,
            "churn_risk": self.risk_churn_risk,
            "pricing": self.risk_pricing,
        }
        return {
            tag: tuple(t.strip().lower() for t in raw.split(",") if t.strip())
            for tag, raw in lists.items()
        }
