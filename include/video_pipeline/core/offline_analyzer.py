"""An analyzer that needs no network: extractive, deterministic, English and Russian aware.

It is what runs when no Gemini key is configured, so it has to be useful on its
own: keywords by TF-IDF over sentences (sentences are the "documents"), an
extractive summary of the highest scoring sentences in their original order,
action items found by phrase patterns, and chapters cut at the longest pauses
near evenly spaced points and titled by their own keywords. It cannot
translate, so the analysis is in the transcript's language.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from include.video_pipeline.core.analysis import (
    LIMITS,
    AnalysisResult,
    AnalyzerName,
    Usage,
    empty_analysis,
    ground_analysis,
    needs_model,
    normalize_language,
    resolve_output_language,
    silent_analysis,
    transcript_duration,
)
from include.video_pipeline.core.transcript import Segment, Transcript

OFFLINE_MODEL = "extractive-tfidf"
OFFLINE_VERSION = "offline_v1"

STOPWORDS_EN = frozenset(
    """
    a about above after again against all also am an and any are aren't as at be because been before being below
    between both but by can can't cannot could couldn't did didn't do does doesn't doing don't down during each
    even ever every few for from further get gets getting go goes going gone got had hadn't has hasn't have haven't
    having he he'd he'll he's her here here's hers herself him himself his how how's however i i'd i'll i'm i've if
    in into is isn't it it's its itself just know let let's like lot lots make many maybe me more most much must
    mustn't my myself need no nor not now of off often on once one only or other ought our ours ourselves out over
    own really right said same say says see shan't she she'd she'll she's should shouldn't so some something still
    such sure take than that that's the their theirs them themselves then there there's these they they'd they'll
    they're they've thing things think this those though through thus to too um uh under until up upon us very
    want was wasn't way we we'd we'll we're we've well were weren't what what's when when's where where's which
    while who who's whom why why's will with won't would wouldn't yeah yes yet you you'd you'll you're you've your
    yours yourself yourselves okay ok actually basically kind sort going gonna wanna also
    """.split()
)

STOPWORDS_RU = frozenset(
    """
    а без более бы был была были было быть в вам вас весь во вот все всего всех всё вы где да даже для до его ее
    её если есть еще ещё же за здесь и из или им их к как какая какие какой когда кто ли либо мне может можно мой
    моя мы на над надо наш не него нее неё нет ни них но ну о об однако он она они оно от очень по под при про с
    со так также такой там те тем то того тоже той только том ты у уже хотя чего чей чем что чтобы чье чья эта
    эти это этого этой этом этот я вообще вроде просто типа значит короче сейчас потом тут тогда ещё нам нас
    наши наша наше свой своя свои свое своё себя себе сам сама сами само будет будут буду будем будешь был
    него ней нему ним нами вами тебе тебя меня мной ему ей них всем всеми всему всей всю вся какое каких каким
    которые который которая которое которых котором которой которому этим этими этих этому эту той тот та
    чем ж бы ведь вон лишь уж раз два три один одна одно сказать говорит говорю знаю думаю давайте будто
    пока почему потому поэтому чтоб зачем куда откуда сколько тоже причём причем например вот-вот ага угу эм
    """.split()
)

_WORD = re.compile(r"[^\W\d_]+(?:[-'’][^\W\d_]+)*", flags=re.UNICODE)
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_CYRILLIC = re.compile(r"[а-яё]")

# Inflectional endings, longest first. Russian nouns and adjectives change their
# ending with case and number ("бюджет", "бюджета", "бюджету"); without folding
# them a keyword's count is split across its forms and it loses to filler.
_RU_ENDINGS = tuple(
    sorted(
        """
        иями ями ами ией иях иям ии ий ый ой ая яя ое ее ые ие ых их ым им ом ем ам ям ах ях ую юю ов ев ей ия ья ье ьи
        ью ию а я о е ы и у ю ь
        """.split(),
        key=len,
        reverse=True,
    )
)
_EN_ENDINGS = ("ies", "es", "s")

_ACTION_PATTERNS = re.compile(
    r"\b(need to|needs to|we should|you should|we must|have to|has to|let's|please|make sure|"
    r"by (monday|tuesday|wednesday|thursday|friday|tomorrow|next week)|deadline|action item|follow up|"
    r"i will|i'll|we will|we'll)\b"
    r"|\b(нужно|надо|необходимо|давайте|должны|должен|должна|обязательно|пришлите|пришли|отправь|отправьте|"
    r"подготовь|подготовьте|сделайте|сделай|до (понедельника|вторника|среды|четверга|пятницы|конца недели|завтра)|"
    r"к (понедельнику|вторнику|среде|четвергу|пятнице|завтра)|дедлайн\w*)\b",
    flags=re.IGNORECASE | re.UNICODE,
)


def tokenize(text: str) -> list[str]:
    """Lowercased words, Cyrillic included; ``ё`` folded to ``е`` as Russian writers do."""
    return [w.lower().replace("ё", "е").replace("’", "'") for w in _WORD.findall(text)]


def stem(word: str) -> str:
    """A light suffix-stripper: enough to group word forms for counting, never shown to users."""
    endings = _RU_ENDINGS if _CYRILLIC.search(word) else _EN_ENDINGS
    for ending in endings:
        if word.endswith(ending) and len(word) - len(ending) >= 4:
            return word[: -len(ending)]
    return word


# Both lists apply whatever the language: mixed speech is common (Russian with
# English terms), and a filter for one language never removes the other's words.
STOPWORDS = STOPWORDS_EN | STOPWORDS_RU


@dataclass(frozen=True)
class Sentence:
    index: int
    text: str
    start: float
    end: float
    stems: tuple[str, ...]


def split_sentences(segments: Sequence[Segment], *, max_chars: int = 300) -> list[Sentence]:
    """Sentences with the time of the segment they start in.

    Whisper segments break mid-sentence, so text is carried across segments
    until sentence-final punctuation; unpunctuated speech is cut at a segment
    boundary once it gets long.
    """
    sentences: list[Sentence] = []
    stopwords = STOPWORDS
    buffer: list[str] = []
    buffer_start = buffer_end = 0.0

    def flush() -> None:
        text = " ".join(buffer).strip()
        buffer.clear()
        if text:
            stems = tuple(stem(w) for w in tokenize(text) if w not in stopwords and len(w) > 2)
            sentences.append(Sentence(len(sentences), text, buffer_start, buffer_end, stems))

    for segment in segments:
        pieces = [p for p in _SENTENCE_END.split(segment.text.strip()) if p]
        for piece in pieces:
            if not buffer:
                buffer_start = segment.start
            buffer.append(piece)
            buffer_end = segment.end
            if piece.rstrip("\"'»”)").endswith((".", "!", "?", "…")):
                flush()
        if buffer and sum(len(b) for b in buffer) > max_chars:
            flush()
    flush()
    return sentences


@dataclass(frozen=True)
class Keyword:
    stem: str
    label: str  # the most frequent surface form
    score: float


def keywords(sentences: Sequence[Sentence], texts: dict[str, Counter[str]], *, limit: int) -> list[Keyword]:
    """Stems ranked by TF-IDF, sentences as documents; a word said once is not a keyword if any repeats."""
    n = len(sentences)
    tf: Counter[str] = Counter(s for sentence in sentences for s in sentence.stems)
    df: Counter[str] = Counter(s for sentence in sentences for s in set(sentence.stems))
    min_count = 2 if any(count >= 2 for count in tf.values()) else 1
    scored = [
        Keyword(
            stem=s,
            label=_label(texts[s]),
            score=count * (math.log((1 + n) / (1 + df[s])) + 1),
        )
        for s, count in tf.items()
        if count >= min_count
    ]
    scored.sort(key=lambda k: (-k.score, k.label))
    return scored[:limit]


def _label(forms: Counter[str]) -> str:
    # The most frequent form names the keyword; among equals the shortest, which
    # for Russian is most often the nominative ("бюджет" over "бюджета").
    return min(forms, key=lambda form: (-forms[form], len(form), form))


def _surface_forms(sentences: Sequence[Sentence]) -> dict[str, Counter[str]]:
    forms: dict[str, Counter[str]] = {}
    stopwords = STOPWORDS
    for sentence in sentences:
        for word in tokenize(sentence.text):
            if word not in stopwords and len(word) > 2:
                forms.setdefault(stem(word), Counter())[word] += 1
    return forms


def _rank_sentences(sentences: Sequence[Sentence], weights: dict[str, float]) -> list[Sentence]:
    def score(sentence: Sentence) -> float:
        unique = set(sentence.stems)
        # Square root length normalisation: long sentences win on coverage
        # without winning just for being long.
        return sum(weights.get(s, 0.0) for s in unique) / math.sqrt(len(unique)) if unique else 0.0

    return sorted(sentences, key=lambda s: (-score(s), s.index))


def _join_labels(labels: Sequence[str], language: str) -> str:
    if len(labels) <= 1:
        return "".join(labels)
    conjunction = " и " if language == "ru" else " and "
    return ", ".join(labels[:-1]) + conjunction + labels[-1]


def _chapter_bounds(segments: Sequence[Segment], *, duration: float, target_seconds: float) -> list[int]:
    """Indexes of the segments that open a chapter (always including 0).

    Aim for evenly spaced cuts every ``target_seconds``; near each aim, cut at
    the longest pause, because pauses are where speakers change subject.
    """
    count = max(1, min(LIMITS["chapters"], round(duration / target_seconds)))
    if count == 1 or len(segments) < 2:
        return [0]
    span = duration / count
    bounds = [0]
    for k in range(1, count):
        aim = k * span

        def distance(i: int, aim: float = aim) -> float:
            # How far the aim is from the pause before segment i (0 inside it).
            return max(0.0, segments[i - 1].end - aim, aim - segments[i].start)

        window = [i for i in range(bounds[-1] + 1, len(segments)) if distance(i) <= span / 3]
        if not window:
            continue
        best = max(window, key=lambda i: (segments[i].start - segments[i - 1].end, -distance(i)))
        bounds.append(best)
    return bounds


class OfflineAnalyzer:
    """Deterministic extractive analysis; see the module docstring."""

    name: AnalyzerName = "offline"

    def __init__(self, *, chapter_seconds: float = 300.0, summary_sentences: int = 3):
        self.chapter_seconds = chapter_seconds
        self.summary_sentences = summary_sentences

    def analyze(
        self,
        transcript: Transcript,
        *,
        title: str,
        output_language: str | None = None,
        images: Sequence[bytes] = (),  # accepted so multimodal settings never break it; it reads text only
    ) -> AnalysisResult:
        # Extractive text is in the transcript's language whatever was asked for.
        language = normalize_language(transcript.language) or resolve_output_language(transcript, output_language)
        requested = normalize_language(output_language)
        if not needs_model(transcript):
            return silent_analysis(
                transcript,
                language=requested or language,
                analyzer=self.name,
                model=OFFLINE_MODEL,
                prompt_version=OFFLINE_VERSION,
            )
        segments = tuple(s for s in transcript.segments if s.text.strip())
        sentences = split_sentences(segments)
        forms = _surface_forms(sentences)
        ranked_keywords = keywords(sentences, forms, limit=max(LIMITS["tags"], LIMITS["topics"]))
        weights = {k.stem: k.score for k in keywords(sentences, forms, limit=10_000)}
        ranked = _rank_sentences(sentences, weights)

        data = empty_analysis(language)
        top_labels = [k.label for k in ranked_keywords]
        data["title_suggestion"] = _join_labels(top_labels[:3], language).capitalize() or title
        summary = sorted(ranked[: self.summary_sentences], key=lambda s: s.index)
        data["summary"] = " ".join(s.text for s in summary)
        data["key_points"] = [s.text for s in sorted(ranked[: LIMITS["key_points"] // 2 + 1], key=lambda s: s.index)]
        data["topics"] = top_labels[:5]
        data["tags"] = top_labels[: LIMITS["tags"]]
        data["action_items"] = [s.text for s in sentences if _ACTION_PATTERNS.search(s.text)]
        data["quotes"] = [
            {"text": s.text, "start": s.start} for s in sorted(ranked[:2], key=lambda s: s.index) if len(s.stems) >= 3
        ]
        data["chapters"] = self._chapters(segments, sentences, weights, transcript_duration(transcript), language)

        grounded, flags = ground_analysis(data, transcript, language=language)
        if requested and requested != language:
            flags.append("output_language_unavailable")
        return AnalysisResult(
            analyzer=self.name,
            model=OFFLINE_MODEL,
            prompt_version=OFFLINE_VERSION,
            language=language,
            data=grounded,
            flags=tuple(flags),
            usage=Usage(),
        )

    def _chapters(
        self,
        segments: Sequence[Segment],
        sentences: Sequence[Sentence],
        weights: dict[str, float],
        duration: float,
        language: str,
    ) -> list[dict[str, object]]:
        bounds = _chapter_bounds(segments, duration=duration, target_seconds=self.chapter_seconds)
        chapters: list[dict[str, object]] = []
        forms = _surface_forms(sentences)
        for number, (first, stop) in enumerate(zip(bounds, [*bounds[1:], len(segments)], strict=True), start=1):
            start, end = segments[first].start, segments[stop - 1].end
            inside = [s for s in sentences if start <= s.start < end]
            # Title by what is frequent *here* relative to the whole video.
            local: Counter[str] = Counter(s for sentence in inside for s in sentence.stems)
            labels = [
                _label(forms[s])
                for s, _ in sorted(local.items(), key=lambda item: (-item[1] * weights.get(item[0], 0.0), item[0]))[:2]
            ]
            fallback = f"Часть {number}" if language == "ru" else f"Part {number}"
            best = _rank_sentences(inside, weights)[:1]
            chapters.append(
                {
                    "start": start,
                    "end": end,
                    "title": _join_labels(labels, language).capitalize() or fallback,
                    "summary": best[0].text if best else "",
                }
            )
        return chapters
