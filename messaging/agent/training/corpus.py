"""The intent classifier's training corpus, generated: templates × slots × styles × noise.

Customers say the same thing in many ways; a phrase list only knows the ways it lists. This
module writes the variety down as *parts* -- per intent, sentence templates whose ``{slots}``
are filled from word lists -- and then dresses every sentence in the styles real messages
come in: a greeting before it, "thanks" after it, lowercase or shouted, no apostrophes,
text-speak, a typo or two, an emoji. A seeded random generator makes it reproducible: the
same code gives the same ``messaging/agent/data/train.jsonl`` byte for byte (a test checks
the committed file against it).

The hand-written examples (``training/handwritten.jsonl``) are merged in as they are.

Nothing here is taken from the evaluation sets: the held-out set in particular was written
before this file and is never read by it (a test checks that no held-out message is in the
training file).
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

HERE = Path(__file__).parent
HANDWRITTEN_PATH = HERE / "handwritten.jsonl"
# The evaluation sets. Read only to keep their messages OUT of the training file: a generated
# sentence that happens to equal an evaluation message is dropped (decontamination). One- and
# two-word messages ("gm", "merci", "thanks!") are vocabulary every training file must hold,
# not sentences that could leak; they stay.
DECONTAMINATE_MIN_WORDS = 3
EVAL_DIR = HERE.parent.parent.parent / "tests" / "messaging" / "agent"
TRAIN_PATH = HERE.parent / "data" / "train.jsonl"
SEED = 20261206

# How many generated sentences per intent (before de-duplication); the hand-written file
# comes on top. Unknown is large because "anything else" is the widest class.
PER_INTENT = {
    "greeting": 500,
    "account": 900,
    "billing": 900,
    "technical": 1000,
    "complaint": 800,
    "human_request": 900,
    "goodbye": 600,
    "unknown": 350,
    "off_topic": 650,
}

# --- shared slots ---------------------------------------------------------------------------

SLOTS: dict[str, Sequence[str]] = {
    "hi": [
        "hi",
        "hello",
        "hey",
        "hiya",
        "hey there",
        "hi there",
        "hello there",
        "good morning",
        "good afternoon",
        "good evening",
        "morning",
        "howdy",
        "yo",
        "greetings",
        "heya",
        "hallo",
        "hola",
        "gm",
        "g'day",
        "hey team",
        "hi support",
        "hello support team",
    ],
    "please": ["please", "pls", "plz", "kindly", "if you can", "if possible"],
    "need": [
        "I need to",
        "I want to",
        "I'd like to",
        "how do I",
        "how can I",
        "can I",
        "could I",
        "help me",
        "I'm trying to",
        "is it possible to",
        "where do I",
        "what's the way to",
    ],
    "cant": [
        "can't",
        "cannot",
        "cant",
        "can not",
        "unable to",
        "not able to",
        "am unable to",
        "still can't",
        "can't seem to",
    ],
    "app": [
        "the app",
        "your app",
        "the website",
        "the site",
        "the mobile app",
        "the desktop app",
        "the android app",
        "the ios app",
        "the web app",
        "parley",
        "the platform",
        "the dashboard",
        "the page",
        "the program",
        "the software",
        "the iphone app",
        "the browser version",
    ],
    "device": [
        "iphone",
        "android",
        "my pixel",
        "my samsung",
        "windows 11",
        "windows 10",
        "my mac",
        "macos",
        "linux",
        "ubuntu",
        "chrome",
        "firefox",
        "safari",
        "edge",
        "my ipad",
        "my laptop",
        "my phone",
        "my tablet",
        "chromebook",
    ],
    "when": [
        "since yesterday",
        "since the update",
        "since this morning",
        "after the last update",
        "for 2 days",
        "all week",
        "every time",
        "today",
        "again",
        "since last night",
        "for a few hours",
        "randomly",
        "this morning",
        "since I updated",
    ],
    "person": [
        "a human",
        "a person",
        "a real person",
        "someone real",
        "an actual person",
        "a human being",
        "a live agent",
        "an agent",
        "a real agent",
        "a representative",
        "a rep",
        "an operator",
        "a human operator",
        "a manager",
        "your manager",
        "a supervisor",
        "someone",
        "somebody",
        "someone from support",
        "support staff",
        "a staff member",
        "someone from your team",
        "a member of your team",
        "customer service",
        "a customer service agent",
        "a support agent",
        "an employee",
        "a live person",
        "real people",
        "a real human",
        "someone in charge",
        "your boss",
        "the manager",
        "a team member",
        "a specialist",
        "tech support person",
        "a human agent",
        "a customer service rep",
        "a real support person",
        "someone who works there",
        "a live rep",
        "the support team",
        "an actual human",
        "someone competent",
    ],
    # People who can take over, without the bare "someone"/"anyone": "is someone available?"
    # checks that the chat is staffed (a greeting), "is there a human available?" asks for one.
    "human": [
        "a human",
        "a person",
        "a real person",
        "an actual person",
        "a live agent",
        "a real agent",
        "a representative",
        "an operator",
        "a human operator",
        "a manager",
        "a supervisor",
        "someone real",
        "anyone real",
        "a real human",
        "support staff",
        "a staff member",
        "a human agent",
        "a customer service rep",
        "an employee",
        "a support agent",
        "a live person",
        "real people",
        "humans",
        "any humans",
    ],
    "emoji": ["🙂", "🙏", "😊", "👍", "😅", "🤔", "😕", "😩", "😤", "👋", "🙄", ":)", ":(", ":/"],
}


def _expand(template: str, rng: random.Random, slots: dict[str, Sequence[str]]) -> str:
    """Fill every ``{slot}`` of ``template``; ``{a|b|c}`` picks one of the alternatives."""

    def fill(match: re.Match[str]) -> str:
        body = match.group(1)
        if "|" in body:
            return rng.choice(body.split("|"))
        return rng.choice(slots[body])

    # Inner groups first, so alternatives may hold slots: "{{app}|it}".
    previous = None
    while previous != template:
        previous = template
        template = re.sub(r"\{([^{}]*)\}", fill, template)
    return template


# --- per-intent templates -------------------------------------------------------------------

ACCOUNT_SLOTS: dict[str, Sequence[str]] = {
    "login": [
        "log in",
        "login",
        "sign in",
        "signin",
        "log into my account",
        "get into my account",
        "access my account",
        "sign into my account",
        "log on",
        "get in",
    ],
    "acc_thing": [
        "password",
        "email address",
        "email",
        "username",
        "user name",
        "display name",
        "phone number",
        "profile picture",
        "avatar",
        "profile",
        "name",
        "login email",
        "security question",
        "recovery email",
        "account name",
        "bio",
        "account details",
        "personal details",
        "mobile number",
    ],
    "acc_action": ["change", "update", "edit", "reset", "modify", "fix", "correct", "replace"],
    "acc_state": [
        "locked",
        "locked out",
        "suspended",
        "banned",
        "disabled",
        "deactivated",
        "blocked",
        "frozen",
        "restricted",
        "closed",
        "flagged",
    ],
    "twofa": [
        "2fa",
        "two factor",
        "two-factor authentication",
        "2 step verification",
        "mfa",
        "the authenticator app",
        "the sms code",
        "the verification code",
        "the 6 digit code",
        "the one time code",
        "the security code",
        "otp",
        "backup codes",
    ],
    "acc_life": [
        "delete my account",
        "close my account",
        "deactivate my account",
        "remove my account",
        "cancel my account and delete my data",
        "reactivate my account",
        "recover my account",
        "restore my old account",
        "merge my two accounts",
        "transfer my account",
        "make my account private",
        "export my personal data",
        "download my data",
        "get a copy of my data (gdpr)",
    ],
}
ACCOUNT = [
    "{cant} {login}",
    "I {cant} {login}",
    "I {cant} {login} {when}",
    "{need} {acc_action} my {acc_thing}",
    "{need} {acc_action} the {acc_thing} on my account",
    "how to {acc_action} {acc_thing}",
    "{acc_action} {acc_thing}",
    "forgot my {password|pw|password again|login details|username|login email}",
    "I forgot {my password|the password|which email I used|my username|my login}",
    "{password|pw} reset {isn't working|not working|link expired|email never came|link broken}",
    "the {password reset|verification|confirmation|activation|magic link} email {never arrives|isn't coming|didn't arrive|went missing|is not in my inbox}",
    "my account {is|got|was|has been} {acc_state}",
    "why {is|was} my account {acc_state}",
    "account {acc_state}, {help|what do I do|why|how do I fix it}",
    "it says {my password is wrong|wrong password|invalid credentials|incorrect password|user not found|account does not exist} {but I know it's right|when I try to log in|even after reset|}",
    "{I'm not getting|I don't get|I never received|can't get|lost access to} {twofa}",
    "how do I {turn on|turn off|enable|disable|reset|set up} {twofa}",
    "I {lost|changed|broke|got a new} {my phone|phone} and {cant} {login} because of {twofa}",
    "{need} {acc_life}",
    "{acc_life}",
    "I think {my account was hacked|someone hacked my account|someone is using my account|my account is compromised|someone logged into my account}",
    "{got|received|there's} a {login alert|security alert|sign in notification} I don't recognise",
    "someone changed my {password|email|recovery email} without me",
    "the email {is already in use|is already registered|already exists} when I {sign up|register|create an account}",
    "{how do I|can I|need to} {add|invite|remove} a {team member|user|colleague} {to|from} {my workspace|our account|the team}",
    "how do I {log out|sign out} of {all devices|other sessions|every device}",
    "{my|the} {sso|google login|single sign on|sign in with apple|microsoft login} {stopped working|doesn't let me in|is broken|fails}",
    "{need|want} to change the {name|email|owner} on {my|our} account",
    "{can you|could you|pls} {unlock|reactivate|verify|check} my account",
    "I {cant|can't|can not} remember {my password|my username|which email I signed up with}",
    "verification {link|code|email} {expired|not working|invalid|never came}",
    "where are my {account settings|profile settings|security settings}",
    "how do I {make|set} my {profile|account} {private|public}",
    "is my account {verified|active|still active|deleted}",
    "I want to {change|switch} the email I {login|sign in} with",
    "my {login|sign in} {keeps failing|doesn't work|isn't working|fails}",
    "{locked|blocked} out {of my account|after too many attempts|again}",
    "who can see my {profile|personal details|phone number}",
    "transfer ownership of {the workspace|my account|our team} to {a colleague|my coworker|someone else}",
    "I have two accounts, can you {merge them|combine them|delete one}",
    "how do I {sign up|register|create an account|open an account}",
    "my {username|display name} is {wrong|taken|misspelled}",
    "I no longer have access to {the email on my account|my old email|my old phone number}",
    "I get logged into {someone else's account|the wrong account}",
    "update my {profile info|personal info|contact details|address details}",
]

BILLING_SLOTS: dict[str, Sequence[str]] = {
    "money": [
        "$49.99",
        "$12",
        "€20",
        "£9.99",
        "49 euros",
        "20 dollars",
        "$199",
        "€120",
        "$15.00",
        "twice the amount",
        "an extra $30",
        "100 bucks",
    ],
    "bill_doc": [
        "invoice",
        "invoices",
        "receipt",
        "receipts",
        "bill",
        "billing statement",
        "VAT invoice",
        "tax invoice",
        "payment history",
        "credit note",
    ],
    "plan": [
        "pro plan",
        "premium",
        "basic plan",
        "business plan",
        "team plan",
        "free plan",
        "enterprise plan",
        "yearly plan",
        "monthly plan",
        "annual subscription",
        "starter plan",
        "plus plan",
    ],
    "pay_method": [
        "card",
        "credit card",
        "debit card",
        "paypal",
        "bank transfer",
        "apple pay",
        "google pay",
        "payment method",
        "visa",
        "mastercard",
        "amex",
    ],
    "sub": ["subscription", "membership", "plan", "renewal", "auto-renewal", "auto renew", "trial"],
}
BILLING = [
    "I was {charged|billed} twice",
    "{why|how come} was I {charged|billed} {twice|two times|again|double|3 times|after cancelling|this month}",
    "double {charged|charge|billed|payment}",
    "there's a {charge|payment|transaction|debit} of {money} I don't {recognise|recognize|understand}",
    "{I want|I need|I'd like|can I get|how do I get|requesting} a refund{| for {last month|my order|the renewal|the annual plan|this charge}}",
    "{refund|money back} {please|pls|asap|for my last payment}",
    "when will {my refund|the refund|the money} {arrive|show up|be back on my card|be processed}",
    "where {can I find|do I get|do I download|are} my {bill_doc}",
    "{need|can you send|send me|could I get} {a|the|my} {bill_doc} for {last month|march|2024|my company|the last payment}",
    "how much {is|does} the {plan} {cost|}",
    "{price|pricing|cost} of {the|your} {plan}",
    "what's the difference between the {plan} and the {plan}",
    "{how do I|can I|I want to} {upgrade|downgrade|switch} to the {plan}",
    "{how do I|I want to|need to|help me} {cancel|stop|pause|end} my {sub}",
    "how much {for|is it for|would it be for} {5|10|20|50|3|100} {users|seats|people|licenses|members}",
    "{what does|how much does} {it|parley|a license|a seat|the upgrade} cost",
    "cancel my {sub}",
    "{my|the} {sub} renewed {and I didn't want it to|without warning|automatically|but I cancelled}",
    "my {pay_method} {was declined|got declined|isn't accepted|was rejected|keeps failing} {at checkout|when paying|for the renewal|}",
    "{can I|do you accept|is it possible to} pay {with|by|via} {pay_method}",
    "{how do I|I need to|want to} {update|change|add|remove} my {pay_method}",
    "{payment failed|payment didn't go through|payment is pending|transaction failed} {but the money left my account|but I was charged|twice|again|}",
    "{the|my} {promo code|discount code|coupon|voucher} {isn't working|doesn't work|is invalid|expired|won't apply}",
    "do you {offer|have} {student|nonprofit|education|startup|volume|annual} {discounts|pricing|plans}",
    "{is there|do you have} a {free trial|monthly option|yearly option|cheaper plan|family plan}",
    "my free trial {ended|is ending} and {I was charged|you charged me|I don't want to pay}",
    "{stop charging me|don't charge me again|please stop the payments}",
    "why did {the price|my bill|my subscription} {go up|increase|change}",
    "{when is|when's} my next {payment|bill|renewal|charge}",
    "{I need to|please|can you} update my billing {address|details|info|email|country}",
    "add {my VAT number|a company name|our tax id} to {my invoices|the invoice}",
    "{can I|how do I} {add|remove|buy} {more|extra} {seats|licenses|users} {to our plan|}",
    "{I was|we were|you} overcharged {this month|by {money}|}",
    "do you charge {fees|extra|vat|tax} for {international cards|other currencies|europe}",
    "{billing|payment|invoice|refund} question",
    "question about {my bill|a charge|my invoice|my subscription|pricing|my payment}",
    "{the|my} {bill_doc} {shows|has} the wrong {amount|address|company name|currency}",
    "can I get {my invoice|the bill|a receipt} in {euros|dollars|pounds|another currency}",
    "I upgraded by {mistake|accident} {can I get a refund|please revert it|}",
    "I paid but {my account is still on the free plan|the upgrade didn't apply|nothing changed}",
    "how do I {switch to|change to} {annual|monthly|yearly} billing",
    "charged for {a plan I didn't order|something I didn't buy|a plan I cancelled}",
    "{money|payment} was taken {twice|from my account without permission|after cancellation}",
]

TECH_SLOTS: dict[str, Sequence[str]] = {
    "broke": [
        "keeps crashing",
        "crashes",
        "won't open",
        "doesn't open",
        "freezes",
        "is frozen",
        "keeps freezing",
        "hangs",
        "won't load",
        "doesn't load",
        "is not loading",
        "is really slow",
        "is so slow",
        "lags",
        "is laggy",
        "shows a blank screen",
        "shows a white screen",
        "is stuck loading",
        "keeps closing",
        "stopped working",
        "isn't working",
        "doesn't work",
        "is broken",
        "is glitching",
        "is buggy",
        "keeps spinning",
        "won't start",
        "keeps restarting",
        "times out",
    ],
    "feature": [
        "search",
        "notifications",
        "sync",
        "upload",
        "file upload",
        "download",
        "export",
        "import",
        "dark mode",
        "video calls",
        "voice calls",
        "screen sharing",
        "the camera",
        "the microphone",
        "audio",
        "the chat",
        "messages",
        "the calendar",
        "the widget",
        "the editor",
        "attachments",
        "the share button",
        "the send button",
        "the save button",
        "push notifications",
        "email notifications",
        "the api",
        "webhooks",
        "the slack integration",
        "the zapier integration",
        "the chrome extension",
        "the charts",
        "reports",
        "the dashboard",
        "backups",
        "voice messages",
        "video playback",
        "autosave",
        "the link preview",
        "the filters",
        "the print function",
        "offline mode",
        "the keyboard shortcuts",
    ],
    "feat_broke": [
        "isn't working",
        "doesn't work",
        "stopped working",
        "is broken",
        "keeps failing",
        "fails",
        "is not working",
        "does nothing",
        "is glitchy",
        "keeps dropping",
        "keeps cutting out",
        "returns nothing",
        "shows nothing",
        "gives an error",
        "is really slow",
        "won't load",
        "is missing",
        "disappeared",
        "doesn't show up",
        "isn't syncing",
        "freezes",
        "is greyed out",
    ],
    "err": [
        "error 500",
        "a 500 error",
        "error 404",
        "a 404",
        "error 502",
        "a 503",
        "'something went wrong'",
        "an unknown error",
        "error code 0x80070005",
        "'network error'",
        "'connection refused'",
        "a timeout error",
        "'request failed'",
        "a 401 unauthorized",
        "a 403 forbidden",
        "'failed to fetch'",
        "a certificate error",
        "an ssl error",
        "'oops, try again later'",
        "'unexpected error'",
        "an error message",
    ],
}
TECHNICAL = [
    "{app} {broke}",
    "{app} {broke} {when}",
    "{app} {broke} on {device}",
    "{app} {broke} when I {open it|log in|upload a file|try to save|click send|start a call|scroll}",
    "{feature} {feat_broke}",
    "{feature} {feat_broke} {when}",
    "{feature} {feat_broke} on {device}",
    "my {feature} {feat_broke}",
    "{getting|I get|I keep getting|it shows|it says} {err} {when I save|when I log in|on the dashboard|every time|when uploading|}",
    "{err} {when I open the app|on every page|when I click export|after login|}",
    "{cant} {upload|download|open|attach|export|import|sync|share|save|print|play} {files|pdfs|photos|images|videos|my documents|a csv|anything|voice messages}",
    "how do I {set up|configure|use|enable|connect|install} {feature}",
    "how do I {integrate with|connect to|sync with} {slack|zapier|google calendar|outlook|salesforce|teams|our crm}",
    "{is|does} {app|it} {work|available|compatible} {on|with} {device}",
    "{is the service down|is it down|is parley down|are you down|is there an outage|site down}{?|??| right now?| for everyone?|}",
    "{video|voice} calls {keep dropping|drop after a few minutes|disconnect|cut out|freeze|have no sound}",
    "{the|my} {camera|microphone|mic|speaker|webcam|headset} {isn't detected|doesn't work|is not recognised} {in calls|in the browser|on the app|}",
    "{search|the search bar|searching} {returns nothing|finds nothing|shows no results|doesn't find anything|is broken}",
    "my {files|messages|contacts|notes|photos|data|projects} {disappeared|are gone|vanished|are missing} {after the update|when I synced|}",
    "{the api|the rest api|the endpoint|our integration} {returns|gives|throws} {err}",
    "{my|the} api key {doesn't work|is rejected|returns 401|is invalid}",
    "{webhook|webhooks|the webhook} {isn't firing|not arriving|fails|not delivered|never triggers}",
    "{notifications|push notifications|email notifications|alerts} {aren't coming|stopped|don't arrive|are delayed|go to spam}",
    "{messages|my messages|emails} {not sending|won't send|stuck sending|are delayed|show as failed}",
    "{upload|the upload|download|the export} {stuck at|stops at|freezes at} {99%|50%|0%|the end}",
    "{app} {drains my battery|uses too much memory|makes my phone hot|uses 100% cpu}",
    "{install|installation|the update|the installer} {fails|failed|won't finish|errors out} on {device}",
    "the {button|link|menu|tab|toggle|page} {does nothing|is greyed out|doesn't respond|is missing|gives a 404}",
    "{app} keeps logging me out {every few minutes|randomly|all the time|}",
    "{the|my} {calendar|times|timestamps|dates} {show|are in} the wrong {time zone|timezone|time}",
    "{how do I|can I} {embed|add} the {chat widget|widget|form} {on|to} my website",
    "{charts|graphs|reports|the dashboard} {aren't showing data|are empty|won't load|show wrong numbers}",
    "{connection|the connection} {timed out|keeps dropping|is unstable|refused}",
    "I think there's a bug {in|with} {feature}",
    "found a bug: {feature} {feat_broke}",
    "{bug|glitch|issue|problem} with {feature}",
    "{app} {broke}, I already {reinstalled|restarted|cleared the cache|updated it|tried another browser}",
    "I reinstalled {app} {twice|already|} and it still {broke}",
    "{is there|do you have} a {linux|mac|windows|desktop|android|ios} version",
    "{it's|it is|everything is|the app is|the site is} {so|really|super|very|extremely} {laggy|slow|glitchy|buggy|unresponsive} {today|right now|lately|}",
    "which {browsers|devices|phones|versions|operating systems} do you support",
    "{it says|it shows|I get} {something went wrong|an error|try again later|please try again} {please try again|when I try|}",
    "{app} {won't update|won't install|can't be installed} on {device}",
    "{screen|display|text|layout|everything} looks {broken|weird|messed up|tiny|blurry} on {device}",
    "{images|photos|videos|thumbnails|attachments} {won't load|don't display|are broken|show as grey boxes}",
    "{the link|the page|the download link} {you sent|in the email|} {gives a 404|doesn't work|is broken|is dead}",
    "{my backup|the backup|sync|the export} failed {last night|again|with an error|}",
]

COMPLAINT_SLOTS: dict[str, Sequence[str]] = {
    "bad": [
        "terrible",
        "awful",
        "horrible",
        "a joke",
        "useless",
        "pathetic",
        "garbage",
        "trash",
        "rubbish",
        "the worst",
        "unacceptable",
        "ridiculous",
        "a disgrace",
        "a mess",
        "disappointing",
        "shocking",
        "appalling",
        "really bad",
        "so bad",
        "beyond bad",
        "a nightmare",
        "a scam",
        "a rip off",
        "lousy",
        "crap",
        "dreadful",
        "unreliable",
    ],
    "target": [
        "this service",
        "your service",
        "your support",
        "your customer service",
        "this app",
        "your app",
        "your product",
        "this company",
        "your company",
        "the support here",
        "your team",
        "the new update",
        "this experience",
        "the new design",
        "your pricing",
        "this platform",
        "the quality",
        "your help desk",
        "the service lately",
        "your software",
    ],
    "feel": [
        "frustrated",
        "disappointed",
        "annoyed",
        "angry",
        "furious",
        "upset",
        "fed up",
        "sick of this",
        "unhappy",
        "not happy",
        "really unhappy",
        "pissed off",
        "dissatisfied",
        "livid",
        "let down",
        "tired of this",
        "mad",
        "fuming",
    ],
    "shout": [
        "THIS IS RIDICULOUS",
        "UNACCEPTABLE",
        "ARE YOU KIDDING ME",
        "WTF",
        "THIS IS A JOKE",
        "SERIOUSLY",
        "I'M DONE",
        "WORST SERVICE EVER",
        "HORRIBLE",
        "ABSOLUTELY USELESS",
        "FIX THIS NOW",
        "I'M SO ANGRY",
        "THIS IS INSANE",
        "UNBELIEVABLE",
        "NOBODY HELPS",
    ],
    "topic_problem": [
        "my app keeps crashing",
        "I was charged twice",
        "I still can't log in",
        "the sync is broken again",
        "my refund never came",
        "nothing loads",
        "my account is locked again",
        "the app is down again",
        "you charged me after I cancelled",
        "my data is gone",
        "the same bug is still there",
        "my invoice is wrong again",
        "calls keep dropping",
        "it crashed again",
    ],
    "ignored": [
        "nobody helps",
        "nobody answers",
        "no one replies",
        "nobody gets back to me",
        "you never answer",
        "I keep getting ignored",
        "nobody cares",
        "no one has responded",
        "support ignores me",
        "I get no response",
    ],
}
COMPLAINT = [
    "{target} is {bad}",
    "{target} {is|has been|was} {bad}{!|!!|.| honestly|, seriously}",
    "I'm {so|really|very|extremely|absolutely|incredibly|} {feel}",
    "I'm {so|really|very|extremely|} {feel} with {target}",
    "I am {feel} {about|with} {how I was treated|how my issue was handled|the service|the response time|the way you handled this}",
    "{shout}",
    "{shout}!!",
    "{shout}, {topic_problem} and {ignored}",
    "{shout}! {topic_problem}",
    "{topic_problem} and {ignored}. {bad}.",
    "{topic_problem} AGAIN. {bad}",
    "this is the {third|fourth|fifth|10th} time {I'm writing|I've reported this|I contact you} and {nothing happens|nothing changed|{ignored}}",
    "I've been waiting {2 weeks|a month|5 days|forever|days} for {a reply|an answer|a response|my refund|a fix}. {bad}.",
    "{ignored}",
    "{ignored}, {bad}",
    "I want to {file|make|submit|lodge} a {formal|} complaint",
    "I {will|am going to|'ll} {never recommend you|leave a bad review|report you|go to consumer protection|talk to my lawyer|post about this on social media|dispute the charge with my bank}",
    "never {again|using this again|recommending you}",
    "what a {waste of money|waste of time|joke|disappointment|rip off|scam}",
    "you {people|guys} are {useless|incompetent|a joke|clueless|hopeless|pathetic}",
    "{the agent|your rep|the person I spoke to|your support guy|the operator} was {rude|unhelpful|dismissive|useless|unprofessional}",
    "you {promised|said} {this would be fixed|a refund|a callback|an update} {weeks ago|last month|and never delivered|} {bad}",
    "{honestly|frankly|seriously|tbh} {target} {has gone downhill|got worse|is getting worse|is not what it used to be}",
    "I hate {target}",
    "{target} sucks",
    "{why|how} {is this still broken|does nothing ever work|is this so hard|can't you fix this} {?|?!|??|!!!}",
    "shame on you",
    "{very|really|extremely} poor {service|support|quality|experience}",
    "not impressed {at all|with the new pricing|with your support|with this update}",
    "I expected {much|way|a lot} better {for what I pay|from you|}",
    "I pay for {premium|the pro plan|your service} and {get|I get} {this|garbage|nothing|a broken app}",
    "this is {unacceptable|outrageous|a disgrace|insulting|beyond frustrating}, {topic_problem}",
    "{feel}. {topic_problem} and {ignored}",
    "{topic_problem}!!! {bad}",
    "bring back the old {design|version|app}, the new one is {bad}",
    "{fed up|sick|tired} {with|of} {the constant bugs|the outages|your excuses|waiting|the price hikes|this app|being ignored}",
    "I'm {feel} about {the price increase|the new pricing|the outage|the update|losing my data|the way I was treated|the delay}",
]

HUMAN = [
    "{can I|could I|may I|can i} {talk|speak|chat} {to|with} {person}",
    "I {want|need|would like|'d like|wanna} to {talk|speak|chat} {to|with} {person}",
    "I'd {rather|prefer to} {talk|speak} to {person}",
    "let me {talk|speak|chat} {to|with} {person}",
    "{connect|transfer|put|pass|send} me {to|through to|with} {person}",
    "{get|give|find} me {person}",
    "{person} {please|pls|plz|now|asap|!!|}",
    "{human|agent|representative|operator|real person|live agent|rep|manager|supervisor}",
    "is there {human} {there|available|I can talk to|online|around|I could speak with}?",
    "{can|could} {a human|a person|a real person|someone real|an agent} help me{| with this| please}",
    "{need|want|request} {human|live|real|personal|in-person} {support|help|assistance}",
    "{is|are} {someone|anyone|anybody} {real|human} {there|available|around|on the other end}?",
    "I want to talk to {someone|somebody} {please|now|about this|}",
    "{hi|hello|hey}, {can|could} I get {human} {please|on the line|to help}",
    "is there {a person|a human|anyone real|a real person|anybody human|an actual person} {there|on the other end|reading this|behind this chat}",
    "are there any {humans|real people|people|staff} {working there|available|I can talk to|online}",
    "{can|could} {person} {call me|phone me|contact me|call me back|reach out to me|get back to me personally}",
    "I want {person} to {call me|look at my case|handle this|contact me|check my account}",
    "{please|pls|} have {person} {call me|contact me|get in touch|look into this}",
    "{escalate|forward|pass|hand} {this|my case|my ticket|this conversation} to {person}",
    "{stop|enough with} the bot{, I need| i want|. get me|, give me} {person}",
    "I don't want to talk to {a bot|a robot|a machine|an ai|a chatbot}{, get me {person}|, {person} please|}",
    "{you're|this bot is|the bot is|this is} not helping{, I want| i need| let me talk to| get me} {person}",
    "{request|requesting} {person}",
    "{need|want} {person} {now|asap|please|urgently|to help me|}",
    "{talk|speak} to {person}",
    "{human|person|agent|operator} {please|pls|plz|now}",
    "can you {transfer|connect|escalate} me{| to {person}}",
    "{hello|hi|hey}, I would like to {speak|talk} to {person} about {my order|my account|a charge|my case|a problem}",
    "I need to {speak|talk} with {person} about {my bill|my account|a problem|an urgent issue}",
    "{call me|callback please|can I get a call back|can someone call me|please call me back}",
    "{am I talking to|is this} a {bot|robot|real person|human}? {I want|I need|let me talk to|get me} {person}",
    "how do I {reach|contact|get hold of|get through to} {person}",
    "{is|are} {someone|anyone|anybody} {real|human} {there|available|around}?",
    "put me in touch with {person}",
]

GOODBYE = [
    "{thanks|thank you|thx|ty|tysm|thank u|cheers|many thanks|thanks a lot|thank you so much|thanks a bunch|tyvm|much appreciated|appreciate it}{!|!!|.| :)| 🙏| 👍|}",
    "{thanks|thank you|thx|ty|cheers}, {bye|goodbye|that's all|that's everything|have a nice day|take care|see you|all good now|that fixed it|that worked|it works now|all sorted}",
    "{ok|okay|great|perfect|awesome|cool|brilliant|lovely|nice|got it|alright|sweet}{,|} {thanks|thank you|thx|ty|cheers}{| bye| so much| a lot|!}",
    "{bye|goodbye|good bye|bye bye|see ya|see you|cya|later|catch you later|take care|talk later|ttyl|have a good one|have a nice day|good night|goodnight}{!|.| 👋|}",
    "{that|this} {fixed it|worked|solved it|did the trick|helped|sorted it}{, thanks|, thank you|! thx|, cheers|}",
    "{problem|issue|all} {solved|resolved|fixed|sorted}{, thanks|, thank you|. bye|}",
    "{that's all|that's everything|nothing else|no more questions|I'm all set|all good|we're done here} {for now|}{, thanks|, thank you|. bye|}",
    "thank you for {your help|the help|helping me|the quick reply|fixing it|sorting that out|resolving my {account|billing|login|payment|app} {issue|problem}|your patience|explaining}",
    "thanks for {your help|the help|the info|the quick response|sorting that|fixing my {billing|account|login|sync|upload} {issue|problem}}{!|.|}",
    "{thanks|many thanks|thank you|thx|cheers} for {the help|your help|helping|the support} with {my account|the invoice|my login|billing|the app|my password|the refund|the crash|my subscription}{!|.|}",
    "{great|perfect|awesome|ok}, {the app works again|I can log in now|the refund arrived|it's working now|I got the invoice}, {thanks|thank you|cheers}",
    "{ok|okay|alright}, I'll try that{. thanks|, thank you|, cheers|, bye|}",
    "you've been {very|really|super|} helpful{, thanks|, thank you|, bye|!}",
    "{merci|gracias|danke|obrigado|grazie}{| beaucoup| mucho| schön}",
    "{have a good|have a great|have a nice|enjoy your} {day|evening|weekend|night}{!|}",
]

GREETING = [
    "{hi}",
    "{hi}{!|!!|.|?| :)| 👋| 🙂|}",
    "{hi} {there|team|everyone|all|folks|guys|bot|chatbot|assistant|parley|support|y'all|friend}",
    "{hi}, {how are you|how's it going|how are you doing|hope you're well|hope you're having a good day|anyone there|is this support|is anyone there|anybody around}{?|!|}",
    "{hi}, {just saying hi|just checking in|I'm new here|first time here}",
    "{is anyone there|anybody there|anyone around|anyone home|is this thing on}{?|??|}",
    "{good morning|good afternoon|good evening|morning|evening|afternoon|g'day|gday|gm|gn}{ all| team| folks|!|}",
    "{hola|bonjour|salut|ciao|hallo|guten tag|buongiorno|buenas|olá|oi|namaste|konnichiwa|hej|moin|servus|ahoj|salaam}{!|}",
    "{sup|wassup|what's up|whats up|yo|heya|hiya|howdy|hey hey|ello|helloo|hellooo|hii|hiii|heyy|heyyy}{ there| bot|!|}",
    "{hi|hello|hey} {again|once more|it's me again}",
    "{how are you|how are you doing|how's your day|how is it going}{ today|}?",
    "nice to meet you",
    "{hi|hello|hey}, is {someone|anyone|anybody} {available|there|around|online}{?|}",
    "{hi|hello|hey}{,|} is this {where I get help|the help desk|support|the right place for help|the support chat}{?|}",
    "{aloha|wazzup|whazzup|yo yo|hey hey|heya|hiya|sup|waddup|hai|halo|hullo|hellooo|good day|top of the morning}",
    "{hi|hello|hey}, my name is {sarah|tom|priya|ahmed|li|maria|john}",
    "{hi|hello|hey} {from|in} {germany|sydney|brazil|the uk|canada|india|france}",
]

UNKNOWN_SLOTS: dict[str, Sequence[str]] = {
    "place": [
        "paris",
        "tokyo",
        "london",
        "new york",
        "australia",
        "canada",
        "brazil",
        "rome",
        "berlin",
        "india",
        "the moon",
        "mars",
        "egypt",
        "peru",
        "my city",
        "spain",
    ],
    "thing": [
        "cats",
        "dogs",
        "pizza",
        "football",
        "movies",
        "music",
        "the weather",
        "bitcoin",
        "chess",
        "cooking",
        "history",
        "the stock market",
        "politics",
        "dinosaurs",
        "space",
        "coffee",
        "the news",
        "basketball",
        "poetry",
        "physics",
        "yoga",
    ],
}
OFF_TOPIC = [
    "{tell me|got|know any|share|give me|do you have} {a joke|some jokes|a funny joke|a good joke|a dad joke|a pun|a knock knock joke}{ please|?| for me|}",
    "{make me laugh|say something funny|cheer me up|entertain me}{ please|}",
    "what's the weather {in {place}|tomorrow|today|like|this weekend}{?|}",
    "{what is|what's} the capital of {place}",
    "{who won|did you watch|what was the score of} {the game|the match|the world cup|the election|the final} {last night|yesterday|}",
    "{tell me|do you know|know any} {a joke|a story|a fun fact|a riddle|something interesting}",
    "{can you|could you|will you|pls} {write|compose} {a poem|a story|an essay|a song|my homework|a cover letter} {about {thing}|for me|}",
    "{can you|could you} {book|order|reserve|buy} {me |}{a flight|a taxi|a pizza|a table|tickets|an uber|a hotel} {to {place}|for tonight|}",
    "{do you like|what do you think about|are you into|favourite} {thing}{?|}",
    "{recommend|suggest} {a good movie|a book|a restaurant|a song|a game|a tv show|a recipe}",
    "how {tall|old|far|big} is {mount everest|the eiffel tower|the sun|the moon|{place}}",
    "{who is|who was} {the president|the richest person|einstein|the king|the best footballer}",
    "{what|when|why|how} {is|was|are} {love|life|the universe|time|god|happiness|{thing}}{?|}",
    "{are aliens real|is the earth flat|do ghosts exist|is god real|are you alive|are you sentient|do you dream}{?|}",
    "{how do I|how to|what's the best way to} {cook rice|lose weight|learn guitar|fix my car|bake bread|train my dog|learn spanish|plant tomatoes|tie a tie}",
    "translate {hello|thank you|good night|this} {into|to} {japanese|french|german|spanish|italian}",
    "{what time is it|what day is it|what year is it|what's the date today}{?|}",
    "{what's|what is} {2+2|5 times 7|the square root of 16|100 divided by 3|pi}",
    "{do you sell|where can I buy|do you have} {shoes|bikes|groceries|furniture|clothes|phones|concert tickets|flowers}",
    "{where is|how do I get to|directions to} {the nearest {supermarket|pharmacy|atm|gas station}|the airport|{place}}",
    "{are you single|will you marry me|do you have a girlfriend|how old are you|what's your name|who made you|where do you live|what's your favourite colour|do you have feelings}{?|}",
    "{explain|what is} {quantum physics|relativity|machine learning|the stock market|inflation|black holes|photosynthesis}",
    "{i'm bored|i'm hungry|i'm tired|i'm sad|it's raining|it's my birthday|i got a new puppy}{|!| lol}",
    "{sing me a song|say something funny|talk dirty|entertain me|let's play a game|roll a dice|flip a coin}",
    "{should I|can you help me} {buy bitcoin|invest in stocks|with my homework|with my taxes|pick a name for my cat}",
    "{is this|are you} {a real website|chatgpt|siri|alexa|google|an ai}{?|}",
    "{my cousin|my friend|my neighbour|someone} {said|told me} {you sell bikes|you're hiring|you give free stuff|this is a bank}{, is that true?|?|}",
    "are you open on {sundays|weekends|holidays|christmas}{?|}",
    "{where are you located|where is your office|do you have a store in {place}}{?|}",
    "{are you hiring|do you have job openings|can I work for you|internship?}",
    "{the quick brown fox jumps over the lazy dog|the cat sat on the mat|to be or not to be}",
    "which is better{,|} {iphone or android|cats or dogs|coke or pepsi|mac or pc|tea or coffee}{?|}",
]
_GIBBERISH_RNG = random.Random(SEED + 1)
GIBBERISH = [
    "".join(
        _GIBBERISH_RNG.choice("asdfghjklqwertyuiopzxcvbnm")
        for _ in range(_GIBBERISH_RNG.randint(3, 9))
    )
    for _ in range(120)
]
# Unclear: too vague, too short or not words at all. Answered with a request to rephrase.
UNCLEAR = [
    "{I need help|help|help me|I have a question|quick question|question|can you help me|I have a problem|I need some help|need assistance|support|can I ask something|got a sec?}{?|!|.|}",
    "{ok|okay|k|kk|yes|no|yeah|nope|maybe|sure|hmm|hm|umm|ah|oh|lol|lmao|haha|wow|idk|what|huh|why|test|testing|...|?|??|!}",
    "{asdf|qwerty|jkl;|zxcv|sdfsdf|aaaa|asdasd|lkjh|ghjk|dfgh|xyz|blah blah|lorem ipsum|abc|hjkl|pppp}",
    "{123|42|0000|1234567|999|007|3.14|1}",
    "{😂|😂😂😂|🤷|👀|🔥🔥|❤️|🙃|🤖|💀|😎}",
    "{what can you do|what do you do|what is this|who are you|what are you}{?|}",
    "{I have|I've got|I got|there's|we have|got} {a problem|an issue|a question|a query|a quick question|a small problem|a request|something to ask}{| here| for you}",
    "{something's wrong|something is wrong|it's not working|it doesn't work|it's broken|not working|doesn't work|it won't work}{|!|.|?}",
    "{gibberish}",
    "{gibberish} {gibberish}",
    "{gibberish} {gibberish} {gibberish}",
]

TEMPLATES: dict[str, tuple[list[str], dict[str, Sequence[str]]]] = {
    "greeting": (GREETING, {}),
    "account": (ACCOUNT, ACCOUNT_SLOTS),
    "billing": (BILLING, BILLING_SLOTS),
    "technical": (TECHNICAL, TECH_SLOTS),
    "complaint": (COMPLAINT, COMPLAINT_SLOTS),
    "human_request": (HUMAN, {}),
    "goodbye": (GOODBYE, {}),
    "unknown": (UNCLEAR, {"gibberish": GIBBERISH}),
    "off_topic": (OFF_TOPIC, UNKNOWN_SLOTS),
}
# "off_topic" is not an intent: its messages are ``unknown`` with the topic "off_topic", which
# the model learns as a class of its own so the agent can answer "I can't help with that"
# to a question about the weather and "could you tell me more?" to "help".
OFF_TOPIC_CLASS = "off_topic"

# --- styles ---------------------------------------------------------------------------------

# Intents whose messages may be wrapped in a greeting or a thank-you and keep their label:
# "hi, I was charged twice" is billing; "thanks, but can I talk to a person" is a request.
_SUBSTANTIVE = ("account", "billing", "technical", "complaint", "human_request")
_LEADS = [
    "{hi}, ",
    "{hi} ",
    "{hi}! ",
    "{hi}. ",
    "{hi} team, ",
    "quick question: ",
    "um ",
    "so ",
    "ok so ",
    "hey, quick one: ",
    "sorry to bother you, ",
    "help! ",
    "urgent: ",
    "hello, I have an issue: ",
    "hi there, ",
    "good morning, ",
    "excuse me, ",
    "thanks for getting back to me, but ",
    "thanks, but ",
    "one more thing: ",
    "also ",
]
_TAILS = [
    "",
    "?",
    "??",
    "!",
    "!!",
    ".",
    " again",
    " again!!",
    " again?",
    " help!",
    " please",
    " pls",
    " asap",
    " thanks",
    " thank you",
    " thx",
    ", can you help?",
    ". any ideas?",
    ". please help",
    " {emoji}",
    "...",
    ". what should I do?",
    ", thanks in advance",
    " :(",
    " 🙏",
]
_TEXTSPEAK = [
    (r"\byou\b", "u"),
    (r"\byour\b", "ur"),
    (r"\bplease\b", "pls"),
    (r"\bthanks\b", "thx"),
    (r"\bbecause\b", "cuz"),
    (r"\bare\b", "r"),
    (r"\bwant to\b", "wanna"),
    (r"\bdon't\b", "dont"),
    (r"\bcan't\b", "cant"),
    (r"\bI'm\b", "im"),
    (r"\bwhat\b", "wat"),
]
_KEYBOARD_NEIGHBOURS = {
    "a": "qsz",
    "s": "adw",
    "d": "sfe",
    "e": "wrd",
    "r": "etf",
    "t": "ryg",
    "o": "ipl",
    "i": "uok",
    "n": "bm",
    "m": "n",
    "l": "ko",
    "c": "xv",
    "h": "gj",
    "u": "yi",
    "g": "fh",
    "p": "o",
    "y": "tu",
    "w": "qe",
    "b": "vn",
    "k": "jl",
}


def _typo(text: str, rng: random.Random) -> str:
    """One keyboard slip in a word of 4+ letters: a dropped, doubled, swapped or wrong key."""
    words = text.split(" ")
    candidates = [i for i, w in enumerate(words) if len(w) >= 4 and w.isalpha()]
    if not candidates:
        return text
    i = rng.choice(candidates)
    w = words[i]
    j = rng.randrange(1, len(w) - 1)
    kind = rng.randrange(4)
    if kind == 0:
        w = w[:j] + w[j + 1 :]
    elif kind == 1:
        w = w[:j] + w[j] + w[j:]
    elif kind == 2:
        w = w[: j - 1] + w[j] + w[j - 1] + w[j + 1 :]
    else:
        w = w[:j] + rng.choice(_KEYBOARD_NEIGHBOURS.get(w[j].lower(), w[j])) + w[j + 1 :]
    words[i] = w
    return " ".join(words)


def _style(text: str, intent: str, rng: random.Random) -> str:
    """Dress a sentence the way customers write: leads, tails, case, text-speak, typos."""
    slots = SLOTS
    if intent in _SUBSTANTIVE and rng.random() < 0.3:
        text = _expand(rng.choice(_LEADS), rng, slots) + text
    if intent not in ("greeting", "goodbye", "unknown", OFF_TOPIC_CLASS) and rng.random() < 0.45:
        text = text.rstrip(".!?") + _expand(rng.choice(_TAILS), rng, slots)
    if rng.random() < 0.25:
        for pattern, short in _TEXTSPEAK:
            if rng.random() < 0.5:
                text = re.sub(pattern, short, text, flags=re.IGNORECASE)
    if rng.random() < 0.3:
        text = text.replace("'", "").replace("’", "")
    roll = rng.random()
    if roll < 0.45:
        text = text.lower()
    elif roll < 0.75:
        text = text[:1].upper() + text[1:]
    elif roll < 0.8 and intent == "complaint":
        text = text.upper()
    for _ in range(2):
        if rng.random() < 0.2:
            text = _typo(text, rng)
    return re.sub(r"\s+", " ", text).strip()


def generate(rng: random.Random | None = None) -> Iterator[tuple[str, str]]:
    """Yield ``(text, intent)`` pairs: every intent's templates, filled and styled."""
    rng = rng or random.Random(SEED)
    for intent, (templates, own_slots) in TEMPLATES.items():
        slots = {**SLOTS, **own_slots}
        seen: set[str] = set()
        for n in range(PER_INTENT[intent]):
            # Cycle through the templates so each is used, then fill at random.
            template = templates[n % len(templates)]
            text = _style(_expand(template, rng, slots), intent, rng)
            key = text.lower()
            if text and key not in seen:
                seen.add(key)
                yield text, intent


def load_jsonl(path: Path, *, with_topic: bool = False) -> list[tuple[str, str]]:
    """``(text, intent)`` pairs of a JSON-lines file; '#' lines are comments. With
    ``with_topic``, an ``unknown`` row whose topic is "off_topic" comes as that class."""
    rows: list[tuple[str, str]] = []
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip() and not line.lstrip().startswith("#"):
                row = json.loads(line)
                label = row["intent"]
                if with_topic and row.get("topic") == OFF_TOPIC_CLASS:
                    label = OFF_TOPIC_CLASS
                rows.append((row["text"], label))
    return rows


TRAIN_HEADER = (
    "# TRAINING FILE of the support agent's intent classifier. Generated: do not edit by hand.\n"
    "# `python -m messaging.agent.training.corpus` writes it from the templates in\n"
    "# messaging/agent/training/corpus.py and the hand-written examples in\n"
    "# messaging/agent/training/handwritten.jsonl; then `python -m messaging.agent.training.train`\n"
    "# fits the model. No message of the evaluation sets is in it (dropped if generated).\n"
)


def comparable(text: str) -> str:
    """``text`` as duplicates are compared: lowercase words, no punctuation or apostrophes."""
    return " ".join(re.findall(r"[^\W_]+", text.lower().replace("'", "").replace("’", "")))


def evaluation_messages() -> set[str]:
    """Every message of three words or more of every evaluation set, as :func:`comparable`
    text."""
    messages = (
        comparable(text)
        for path in sorted(EVAL_DIR.glob("*.jsonl"))
        for text, _ in load_jsonl(path)
    )
    return {m for m in messages if len(m.split()) >= DECONTAMINATE_MIN_WORDS}


def build() -> list[tuple[str, str]]:
    """The whole training corpus: hand-written examples first, then the generated ones,
    without duplicates (the first label wins) and without any evaluation message."""
    rows: list[tuple[str, str]] = []
    seen: set[str] = evaluation_messages()
    for text, intent in [*load_jsonl(HANDWRITTEN_PATH, with_topic=True), *generate()]:
        key = comparable(text)
        if key and key not in seen:
            seen.add(key)
            rows.append((text, intent))
    return rows


def render(rows: list[tuple[str, str]]) -> str:
    """The training file's text."""
    lines = [
        json.dumps(
            {"text": t, "intent": "unknown", "topic": OFF_TOPIC_CLASS}
            if i == OFF_TOPIC_CLASS
            else {"text": t, "intent": i},
            ensure_ascii=False,
        )
        for t, i in rows
    ]
    return TRAIN_HEADER + "\n".join(lines) + "\n"


def main() -> int:
    rows = build()
    TRAIN_PATH.parent.mkdir(parents=True, exist_ok=True)
    TRAIN_PATH.write_text(render(rows), encoding="utf-8")
    sys.stdout.write(f"{TRAIN_PATH}: {len(rows)} examples\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
