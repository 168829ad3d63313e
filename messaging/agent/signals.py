"""Explicit signals the agent never leaves to a statistical model.

A request for a human must reach a human every time (recall 100 %), and a message that is not
one must not page an operator. The classifier learns the many ways people ask; these patterns
are the floor under it: an explicit request ("let me talk to a person", "get me your manager",
"is there a human there", "call me back") is a request whatever the model thinks, and the
model's own ``human_request`` needs at least one word that can name or summon a human
(:func:`mentions_a_human`), so "hi bot" or "are aliens real" cannot page anyone.

Patterns run on :func:`normalise` text: lowercase, apostrophes dropped ("don't" → "dont"),
anything that is not a letter or digit turned into a single space.
"""

from __future__ import annotations

import re
import unicodedata

_APOSTROPHES = re.compile(r"['’‘`´]")
_NON_WORD = re.compile(r"[\W_]+")


def normalise(text: str) -> str:
    """Lowercase words separated by single spaces, padded with one space on each side."""
    text = unicodedata.normalize("NFKC", text).lower()
    return " " + _NON_WORD.sub(" ", _APOSTROPHES.sub("", text)).strip() + " "


# Words that name a human who could take over. "someone"/"anyone" only count with a verb of
# talking or a "real"/"human" qualifier: "can someone help me reset my password" is a question
# about a password.
_PERSON = (
    r"(?:humans?|persons?|people|agents?|reps?|representatives?|operators?|managers?|"
    r"supervisors?|staff|staffs|employees?|boss|colleagues?|specialists?|"
    r"team ?members?|members? of (?:your|ur|the) (?:support )?(?:team|staff)|"
    r"customer (?:service|support|care)|support (?:team|staff|desk|person|people)|"
    r"live (?:support|chat|help)|help ?desk)"
)
_ANYONE = (
    r"(?:someone|somebody|anyone|anybody|some ?one|some ?body|any ?one|one of (?:you|your \w+))"
)
_FILLER = r"(?: (?:a|an|the|your|ur|yr|some|one|of|real|actual|live|human|proper|competent|"
_FILLER += r"qualified|senior|support|tech|technical|customer|service|billing|sales|account|"
_FILLER += r"from|in|at|on|who|that|can|works|working|there|here|who|is|please|pls|"
_FILLER += r"[a-z]+ing))"

_EXPLICIT = [
    # talk / speak / chat to a person, or to someone (any verb form but the past tense)
    rf" (?:talk|speak|chat|converse|talking|speaking|chatting)(?: \w+)? (?:to|with)"
    rf"{_FILLER}{{0,4}} (?:{_PERSON}|{_ANYONE})",
    # hand me over: connect / transfer / put / pass / send me to ... a person
    rf" (?:connect|transfer|put|pass|send|forward|hand|redirect|switch|route|patch)(?:ed)?"
    rf" (?:me|us|this|it|my \w+|this \w+)(?: over| through| back| in touch)?"
    rf" (?:to|with|through to|on to|onto)(?: the line with)?{_FILLER}{{0,4}}"
    rf" (?:{_PERSON}|{_ANYONE})",
    r" (?:connect|transfer|put|pass|hand|escalate) (?:me|us)(?: please| pls| now)? $",
    # get / give / want / need ... a (real) person
    rf" (?:get|give|find|fetch|bring|send|want|need|needs|request|requesting|prefer|demand|"
    rf"require|wanna|like|love) (?:me |us )?(?:to (?:have|get|reach|see|contact) )?"
    rf"(?:a |an |the |your |some |one of your |to )?(?:real |actual |live |human |proper )?"
    rf"(?:\w+ )?{_PERSON}(?: please| pls| now| asap| here| in here| on (?:this|the line))* ",
    # is there / are there / is this / am I talking to a human
    rf" (?:is|are) (?:there|this|that|you|it) (?:a |an |any |some |one )?(?:real |actual |live )?"
    rf"(?:humans?|persons?|people|{_ANYONE} (?:real|human|alive))",
    rf" (?:is|are) there (?:a |an |any |some )?(?:real |live |human |support |customer service )?"
    rf"{_PERSON} (?:around|available|online|there|here|i can|to|on|who|working|free)",
    rf" (?:is|are) (?:there )?(?:{_ANYONE}|a person|a human) (?:real|human|alive|working|"
    rf"on the other (?:end|side)|behind (?:this|the) \w+|reading this)",
    # a real / live / actual person anywhere
    r" (?:real|actual|live|human|proper) (?:humans?|persons?|people|agents?|reps?|"
    r"representatives?|operators?|support|beings?|ones?|support person) ",
    r" (?:human|humans|human being|humanbeing) ",
    # the one-word or one-phrase request
    r"^ (?:a |an |the |your |ur |some )?(?:real |live |human |actual )?"
    rf"(?:customer service |support )?{_PERSON}"
    r"(?: please| pls| plz| now| asap| here| thanks| thx)* $",
    rf"^(?: \w+){{0,3}} {_PERSON}(?: please| pls| plz| now| asap)+ $",
    rf" (?:have|let|ask|get) (?:a |an |the |your |ur |some )?(?:real |human |live |support )?"
    rf"(?:{_PERSON}|{_ANYONE}) (?:look|check|call|contact|phone|help|handle|review|deal)",
    r" (?:someone|somebody|a person|a human|an agent) on the (?:phone|line) ",
    # call me / call me back / can someone phone me
    r" (?:call|phone|ring|callback|call back|contact|email) me(?: back| on| at| please| pls|$| )",
    r" (?:callback|call back|phone call|a call|call from|call with)(?: \w+){0,3}"
    r" (?:please|pls|from|request|asap|with|someone|somebody|a person|a human|an agent) ",
    rf" (?:{_ANYONE}|{_PERSON})(?: \w+)? (?:to |please |pls |could |can |should )?"
    rf"(?:call|phone|ring|contact|email|reach out to|get back to|get in touch with) (?:me|us)",
    r" (?:callback|call back) $",
    # not a bot: "I don't want a bot", "stop the bot", "no more bots"
    r" (?:not|no|dont want|do not want|dont need|stop|enough with|no more|without|hate|"
    r"sick of|tired of|done with|over) (?:to (?:talk|speak|chat) (?:to|with) )?"
    r"(?:the |a |an |this |your |talking to (?:a |the |this |an )?)?"
    r"(?:bots?|robots?|machines?|chat ?bots?|ai|automated \w+|computer|algorithm)(?: |$)",
    # reach / contact / get hold of a human
    rf" (?:reach|contact|get hold of|get through to|get in touch with|speak|talk)"
    rf"{_FILLER}{{0,3}} (?:{_PERSON})",
    # escalate this (to anyone)
    r" escalat(?:e|ed|ion|ing)(?: this| it| my \w+| the \w+| me)?(?: to| please| pls| now| $)",
    # a person please / someone real please
    rf" (?:{_ANYONE}) (?:real|human|from (?:your|the) (?:team|staff|support|company)|"
    rf"who works (?:there|here|for you)|in charge)",
]
_EXPLICIT_RE = re.compile("|".join(f"(?:{p})" for p in _EXPLICIT))

# Words without which the classifier's ``human_request`` is not believed.
_CUE_RE = re.compile(
    rf" (?:{_PERSON}|{_ANYONE}|real|live|actual|call|phone|callback|bot|bots|robot|machine|"
    rf"ai|automated|escalate|transfer|connect|contact|talk|speak|chat|team|service|support|"
    rf"in charge|personally) "
)


def asks_for_a_human(text: str) -> bool:
    """True for an explicit request to be served by a person."""
    return _EXPLICIT_RE.search(normalise(text)) is not None


def mentions_a_human(text: str) -> bool:
    """True when the message has a word that names or summons a person (a prerequisite for
    believing the classifier's ``human_request``)."""
    return _CUE_RE.search(normalise(text)) is not None
