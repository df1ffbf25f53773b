"""Citation alignment, marker repair and the support check (logic, with a bag-of-words embedder)."""

from __future__ import annotations

import json
from pathlib import Path

from qa import cite
from qa.text import sentence_spans
from qa.types import Passage
from tests.qa.fakes import bow_embed

DOC = (
    "The dialogue was co-chaired by Ishaq Dar and Wang Yi in Beijing. "
    "Dar visited China from January 3 to January 5. "
    "The two sides agreed to build an upgraded version 2.0 of CPEC, accelerating development of Gwadar Port. "
    "The next round will be held in Islamabad next year."
)


def _passages() -> list[Passage]:
    first = DOC.index("The two sides")
    return [
        Passage(1, "a", "doc.txt", "Doc", 0, first, 0.9, DOC[:first]),
        Passage(2, "b", "doc.txt", "Doc", first, len(DOC), 0.8, DOC[first:]),
    ]


def test_markers_point_at_the_supporting_passage_and_offsets_locate_the_sentence():
    res = cite.align("Ishaq Dar and Wang Yi co-chaired the dialogue.", _passages(), bow_embed)
    assert res.text == "Ishaq Dar and Wang Yi co-chaired the dialogue [1]."
    [c] = res.citations
    assert c.n == 1 and DOC[c.start:c.end] == c.quote
    assert c.quote.startswith("The dialogue was co-chaired")


def test_wrong_and_missing_model_markers_are_replaced():
    draft = "They agreed on CPEC 2.0 and Gwadar Port [1]. The next round is in Islamabad (Passage 7)."
    res = cite.align(draft, _passages(), bow_embed)
    assert "[1]" not in res.text and "Passage 7" not in res.text
    assert res.text.count("[2]") == 2
    assert {c.n for c in res.citations} == {2}


def test_unsupported_sentence_gets_no_marker():
    res = cite.align("Bananas are yellow fruit.", _passages(), bow_embed)
    assert res.citations == [] and "[" not in res.text
    assert res.supported_fraction == 0.0


def test_strip_markers_variants():
    assert cite.strip_markers("Dar [1][2], Wang Yi [1, 3] and 【4】 passage [5].") == "Dar, Wang Yi and."


def test_invented_number_is_unsupported():
    assert cite.unsupported_content("Gwadar has a population of 1,000,000.", "population of Gwadar?", _passages())


def test_a_bare_number_is_supported_by_its_ordinal_but_a_number_with_a_unit_is_not():
    ps = [Passage(1, "a", "d.txt", "D", 0, 60, 0.9, "They will mark the 75th anniversary of relations in 2026.")]
    q = "How many years of relations will they mark?"
    assert cite.unsupported_content("75", q, ps) == []
    assert cite.unsupported_content("75 days", q, ps) == ["75"]
    res = cite.align("75", ps, bow_embed, q)
    assert res.text == "75 [1]" and res.citations[0].quote.startswith("They will mark the 75th")


def test_invented_spelled_out_number_is_unsupported():
    ps = _passages()
    assert cite.unsupported_content("Twelve agreements were signed.", "How many agreements?", ps) == ["twelve"]
    assert cite.unsupported_content("The two sides met.", "Who met?", ps) == []


def test_invented_name_is_unsupported_but_passage_names_are_fine():
    ps = _passages()
    assert cite.unsupported_content("The talks were led by Shehbaz Sharif.", "Who led?", ps) == ["Shehbaz", "Sharif"]
    assert cite.unsupported_content("The dialogue was co-chaired by Ishaq Dar.", "Who?", ps) == []
    assert cite.unsupported_content("It ran from January 3 to January 5.", "When?", ps) == []


def test_quantity_and_time_questions_need_that_kind_of_answer():
    assert not cite.answers_question_type("Gwadar Port is being developed.", "What is the population of Gwadar?")
    assert cite.answers_question_type("About 90,000 people.", "What is the population of Gwadar?")
    assert not cite.answers_question_type("In Beijing.", "When was the dialogue held?")
    assert cite.answers_question_type("On January 4.", "When was the dialogue held?")
    assert cite.answers_question_type("Ishaq Dar.", "Who co-chaired it?")


def test_counts_eras_and_relative_times_answer_their_questions():
    assert cite.answers_question_type("One senator represents St. Barts.", "How many senators represent St. Barts?")
    assert cite.answers_question_type("Into two smaller nuclei.", "How many nuclei does uranium-235 split into?")
    assert cite.answers_question_type("Thirteen.", "How many policemen does France pay for?")
    assert not cite.answers_question_type("The two sides signed it.", "How many agreements were signed?")
    assert cite.answers_question_type("270,000 BC.", "To what year have humans in the Balkans been dated?")
    assert cite.answers_question_type("In the 1930s.", "When was a delegation first held unconstitutional?")
    assert cite.answers_question_type("In the first century AD.", "When was the church founded?")
    assert cite.answers_question_type("When the program itself is run.", "When can dynamic testing occur?")


def test_a_cost_or_value_is_only_a_quantity_question_when_it_is_asked_for():
    assert not cite.answers_question_type("It is a port.", "What is the total cost of CPEC?")
    assert not cite.answers_question_type("It is a port.", "What was the value of trade last year?")
    assert cite.answers_question_type("The stage at which it was found.", "What determines the cost of fixing a bug?")


def test_a_quantity_question_is_not_answered_by_dates_years_or_its_own_numbers():
    how_many = "How many agreements were signed during Dar's visit?"
    assert not cite.answers_question_type("Dar visited China from January 3 to January 5.", how_many)
    assert not cite.answers_question_type("It was signed on 4th of January.", how_many)
    assert not cite.answers_question_type("URAAN Pakistan 2024-2029.", "What is the budget of the URAAN plan?")
    assert not cite.answers_question_type("Version 2.0 of CPEC.", "How much is CPEC 2.0 worth?")
    assert cite.answers_question_type("Twelve agreements, signed on January 4.", how_many)
    assert cite.answers_question_type("12 agreements were signed on January 4.", how_many)
    assert cite.answers_question_type("About $62 billion.", "How much is CPEC 2.0 worth?")
    assert cite.answers_question_type("The 75th anniversary.", "How many years of relations will 2026 mark?")
    # a duration may be a range of dates or years; a single date still is not one
    assert cite.answers_question_type("From January 3 to January 5.", "How many days did the visit last?")
    assert cite.answers_question_type("2025-2029.", "How long does the Action Plan run?")
    assert not cite.answers_question_type("On January 4.", "How many days did the visit last?")
    # a share of something is not a count: "year-round" answers it
    assert cite.answers_question_type("Year-round.", "For how much of the year will the pass be open?")


def test_says_not_known():
    for text in ("I don't know.", "The passages do not mention the population.", "This is not specified.", ""):
        assert cite.says_not_known(text), text
    assert not cite.says_not_known("Ishaq Dar and Wang Yi co-chaired it.")


def test_quoted_phrase_must_stand_in_a_passage_punctuation_aside():
    ps = _passages()
    assert cite.unsupported_content('They called it "co-chaired by Ishaq Dar."', "What?", ps) == []
    assert cite.unsupported_content('They called it "a brotherly bond".', "What?", ps) == ['"a brotherly bond"']


def test_question_naming_what_no_passage_has():
    ps = _passages()
    assert cite.missing_question_terms("When will the eighth round be held?", ps) == ["eighth"]
    assert cite.missing_question_terms("What did Huawei announce?", ps) == ["Huawei"]
    assert cite.missing_question_terms("Who visited China from January 3?", ps) == []
    assert cite.missing_question_terms("How many days did the visit last, from first to last day?", ps) == []
    assert cite.missing_question_terms("What did the Chinese side say about Gwadar Port?", ps) == []


def test_title_without_the_qualifier_the_documents_give():
    ps = [Passage(1, "a", "d", "D", 0, 60, 1.0, "Deputy Prime Minister and Foreign Minister Ishaq Dar spoke.")]
    assert cite.unqualified_titles("Pakistan's Prime Minister is Ishaq Dar.", ps) == ["Prime Minister"]
    assert cite.unqualified_titles("Ishaq Dar is the Deputy Prime Minister.", ps) == []
    assert cite.unqualified_titles("Ishaq Dar is the Foreign Minister.", ps) == []


CO_CHAIRS = ("The dialogue was co-chaired by Deputy Prime Minister and Foreign Minister Ishaq Dar and Chinese "
             "Foreign Minister Wang Yi in Beijing.")


def test_an_answer_naming_the_other_person_of_its_sentence_gets_the_qualified_one():
    q = "Who was the Chinese co-chair of the dialogue?"
    assert cite.requalified("Ishaq Dar [1]", q, [CO_CHAIRS]) == "Chinese Foreign Minister Wang Yi"
    assert cite.requalified("The Chinese co-chair was Foreign Minister Ishaq Dar.", q, [CO_CHAIRS]) == \
        "Chinese Foreign Minister Wang Yi"
    # Right answers, with or without the titles the two share, are left alone.
    assert cite.requalified("Wang Yi", q, [CO_CHAIRS]) is None
    assert cite.requalified("Chinese Foreign Minister Wang Yi.", q, [CO_CHAIRS]) is None
    assert cite.requalified("Ishaq Dar and Wang Yi", q, [CO_CHAIRS]) is None


def test_the_qualifier_counts_only_on_the_person_asked_for():
    # Here "Chinese" describes the other party, so Dar is the right answer.
    assert cite.requalified("Ishaq Dar", "Who did the Chinese foreign minister co-chair it with?", [CO_CHAIRS]) is None
    # Not a who-question: "Chinese" qualifies a city, and the sentence's only "Chinese" run is a person.
    assert cite.requalified("Beijing", "Which Chinese city hosted it?", [CO_CHAIRS]) is None
    # The qualifier is not in the evidence: nothing to bind it to.
    assert cite.requalified("Ishaq Dar", "Who was the Pakistani co-chair?", [CO_CHAIRS]) is None
    assert cite.requalified("Ishaq Dar", "Who was the Chinese co-chair?", ["Dar thanked Wang Yi."]) is None


PLAN = "They agreed to implement the Action Plan for a Shared Future (2025-2029)."


def test_a_year_inside_a_range_is_supported_by_it():
    ps = [Passage(1, "a", "d", "D", 0, len(PLAN), 1.0, PLAN)]
    assert cite.align("2029", ps, bow_embed, "Until which year does the Action Plan run?").text == "2029 [1]"
    assert cite.align("2031", ps, bow_embed, "Until which year does the Action Plan run?").text == "2031"


def test_a_range_written_with_another_dash_is_supported():
    text = "The patois is spoken by some 500–700 people."
    ps = [Passage(1, "a", "d", "D", 0, len(text), 1.0, text)]
    assert cite.align("500-700", ps, bow_embed, "About how many people speak the patois?").text == "500-700 [1]"


def test_the_other_end_of_a_year_range_is_given_when_the_question_asks_for_it():
    assert cite.other_end("Until 2025.", "Until which year does it run?", [PLAN]) == "Until 2029."
    assert cite.other_end("2029", "When did the plan start?", [PLAN]) == "2025"
    # The right end, the whole range, or a question about neither end: left alone.
    assert cite.other_end("Until 2029.", "Until which year does it run?", [PLAN]) is None
    assert cite.other_end("2025-2029", "Until which year does it run?", [PLAN]) is None
    assert cite.other_end("2025", "In which year was it adopted?", [PLAN]) is None
    assert cite.other_end("Until 2025.", "Until which year does it run?", ["It was adopted in 2025."]) is None


GAZA = ("The two sides called for a permanent ceasefire in Gaza, reaffirmed support for the two-state solution, "
        "and expressed concern over the situation in the West Bank.")
FORUMS = "Both sides agreed to strengthen cooperation in financial and banking forums."


def test_an_answer_of_another_kind_than_the_which_question_asks_for_gets_the_one_of_that_kind():
    q = "Which solution for Palestine did the two sides support?"
    assert cite.named_kind("The two sides supported a permanent ceasefire in Gaza.", q, [GAZA]) == \
        "two-state solution"
    # Of several evidence sentences, the one that has the kind.
    assert cite.named_kind("Shanghai Cooperation Organisation", "In which forums did the two sides agree to "
                           "strengthen cooperation?", [GAZA, FORUMS]) == "banking forums"


def test_answers_of_the_asked_kind_or_naming_what_qualifies_it_are_left_alone():
    q = "Which solution for Palestine did the two sides support?"
    assert cite.named_kind("The two-state solution.", q, [GAZA]) is None
    assert cite.named_kind("Two-state.", q, [GAZA]) is None
    assert cite.named_kind("Two state.", q, [GAZA]) is None
    assert cite.named_kind("75", "Which anniversary is marked?", ["They mark the 75th anniversary of ties."]) is None
    assert cite.named_kind("14th", "Which Five-Year Plan did China complete?",
                           ["China completed the 14th Five-Year Plan and began the 15th Five-Year Plan."]) is None
    # The answer speaks of what stands right by the kind: "(URAAN Pakistan 2024-2029)" names the plan too.
    assert cite.named_kind("URAAN Pakistan", "Which plan did China credit for Pakistan's growth?",
                           ["China credited Pakistan's National Economic Transformation Plan (URAAN Pakistan)."]) is None
    # Two things of the kind: no way to tell which.
    two = "Pakistan backed the two-state solution and China a political solution."
    assert cite.named_kind("A ceasefire.", "Which solution did Pakistan back?", [two]) is None
    # Held-out SQuAD text: an owner is not a kind ("Picasso's technique"), nor a word across punctuation.
    assert cite.named_kind("A double point of view.", "Which technique did the Impressionists use?",
                           ["The Impressionists used a double point of view, Picasso's technique."]) is None
    assert cite.named_kind("Orphism", "Which offshoot had little in common with Cubism?",
                           ["Cubism spread in France, offshoots such as Orphism had little in common with it."]) is None
    # The kind only appears in a sentence about something else.
    assert cite.named_kind("A ceasefire.", "Which solution did Pakistan back?", ["The solution was salty."]) is None
    # Not a which-question about a kind: "which of", or a verb after the noun.
    assert cite.named_kind("Fiscal.", "Which of Pakistan's sectors did China support?", [GAZA]) is None
    assert cite.named_kind("Gaza.", "The situation in which territory raised concern?", [GAZA]) is None


def test_vacuous_answer_restates_the_question():
    assert cite.is_vacuous("The Five-Year Plan was completed [1].", "Which Five-Year Plan did China complete?")
    assert not cite.is_vacuous("The 14th Five-Year Plan was completed [1].", "Which Five-Year Plan did China complete?")


def test_possessive_names_match_their_name():
    assert cite.missing_question_terms("On what date did Dar's visit begin?", _passages()) == []


def test_bare_answer_is_matched_with_its_question_to_a_sentence_that_contains_it():
    ps = _passages()
    res = cite.align("Islamabad", ps, bow_embed, "Where will the next round be held?")
    assert res.text == "Islamabad [2]" and res.citations[0].quote.endswith("in Islamabad next year.")


def test_bare_answer_no_sentence_contains_is_unsupported():
    res = cite.align("Lahore", _passages(), bow_embed, "Where will the next round be held?")
    assert res.citations == [] and res.supported_fraction == 0.0


def test_ordinal_numbers_stay_whole():
    ps = [Passage(1, "a", "d.txt", "D", 0, 40, 1.0, "China completed the 14th Five-Year Plan.")]
    assert cite.unsupported_content("It will be open for 14 days.", "How long?", ps) == ["14"]
    assert cite.unsupported_content("It completed the 14th plan.", "Which plan?", ps) == []


def test_question_wording_in_the_answer_need_not_be_in_the_passage():
    q = "Which port was mentioned in the same plan?"
    res = cite.align("The port mentioned in the same plan was Gwadar Port.", _passages(), bow_embed, q)
    assert [c.n for c in res.citations] == [2] and "Gwadar Port" in res.citations[0].quote
    assert cite.align("The port mentioned in the same plan was Karachi.", _passages(), bow_embed, q).citations == []


def test_support_must_speak_to_the_question():
    """The answer's name stands in a passage, but that sentence says nothing about what was asked."""
    q = "Who is the leader of the Afghan Taliban government?"
    assert cite.align("The leader of the Afghan Taliban government is Ishaq Dar.", _passages(), bow_embed,
                      q).citations == []
    assert cite.align("Ishaq Dar co-chaired it.", _passages(), bow_embed, "Who co-chaired the dialogue?").citations


def test_a_bare_answer_cites_the_sentence_that_says_what_was_asked():
    text = ("Dar visited China for the dialogue. The dialogue, held in Beijing on Monday in a friendly and "
            "constructive atmosphere after long preparations, was co-chaired by Ishaq Dar.")
    ps = [Passage(1, "a", "d.txt", "D", 0, len(text), 1.0, text)]
    [c] = cite.align("Dar", ps, bow_embed, "Who co-chaired the dialogue?").citations
    assert "co-chaired" in c.quote


def test_the_answer_repairs_leave_every_gold_answer_of_the_eval_set_alone():
    """A repair rewrites an answer; on a right one it must not fire. Every gold alias of the 83 answerable and
    conversation questions, bare and in a sentence, against its supporting sentence (and, for the kind of a
    which-question, every sentence of the article)."""
    root = Path(__file__).resolve().parents[2]
    text = (root / "seeds" / "pakistan-china-strategic-dialogue.txt").read_text(encoding="utf-8")
    sentences = [text[s:e] for s, e in sentence_spans(text)]
    data = json.loads((root / "bench" / "data" / "article_eval.json").read_text(encoding="utf-8"))
    items = [*data["answerable"], *(t for c in data["conversations"] for t in c["turns"])]
    assert len(items) == 83
    for item in items:
        q, support = item["question"], item["support"]
        evidence = [s for s in sentences if support in s]
        assert evidence, support
        for gold in item["answers"]:
            for answer in (gold, f"{gold}.", f"The answer is {gold}."):
                assert cite.requalified(answer, q, evidence) is None, (q, answer)
                assert cite.named_kind(answer, q, sentences) is None, (q, answer)
                assert cite.other_end(answer, q, evidence) is None, (q, answer)
