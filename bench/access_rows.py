"""The benchmark rows of issue 15 (access copies people can watch): B14, a feature film's subtitles
(1,500 cues of Chinese dialogue over two hours, in GB18030 and, the same dialogue in traditional
characters, in Big5, both with CRLF) made into WebVTT by `preserve.access.subtitles.convert_file`
(charset detection, parsing, writing, reading back, the privacy check), against reading the bytes,
decoding them with the codec known beforehand and writing them out as UTF-8, in the same run; and
B15, what the access package's text tracks cost in a full ingest: the benchmark's ProRes clip in a
folder with four feature-length subtitle files (English UTF-8, zh-Hans GB18030, zh-Hant Big5, an
ASS) and an `access: open` sidecar, against the same folder without them (the IIIF manifest and
the page are made in both), and with them but `[access] subtitle_tracks = false`.

Side effects: writes the subtitle files (generated, deterministic) and the tracks under the work
directory; copies the clip once into a submission folder in the cache; runs one Python child per
B14 file (its peak RSS) and the B15 ingests in child processes (bench.child), which publish to the
benchmark's own SeaweedFS."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.environment import clean_env
from bench.launch import REPO
from bench.measure import median, timed
from bench.report import Row, mib, seconds
from bench.rows import Context, ingest, settle, step_seconds
from preserve.access import subtitles
from preserve.access.presentation import KIND_MANIFEST, KIND_PAGE, KIND_TRACK, TrackFinding, TrackOutcome
from preserve.catalog import Catalog
from preserve.config import AccessSettings

#: the film the subtitles are for: two hours, 1,500 cues (a dialogue-heavy feature has 1,000 to 2,000)
FILM_SECONDS = 2 * 3600
CUES = 1500
SEED = 15
#: the largest subtitle file convert_file reads (the [access] default)
MAX_BYTES = AccessSettings().subtitle_max_bytes

# -- the dialogue ------------------------------------------------------------------------------------
# Chinese as (simplified, traditional) pairs, so the GB18030 and the Big5 file say the same thing;
# every traditional string is Big5 (checked when the files are written).
_ZH_SUBJECTS = (
    ("我", "我"), ("你", "你"), ("他", "他"), ("她", "她"), ("我们", "我們"), ("你们", "你們"),
    ("他们", "他們"), ("妈", "媽"), ("爸", "爸"), ("奶奶", "奶奶"), ("老师", "老師"), ("师傅", "師傅"),
    ("你哥", "你哥"), ("隔壁的阿姨", "隔壁的阿姨"), ("厂长", "廠長"), ("村里的人", "村裡的人"),
)  # fmt: skip
_ZH_TIMES = (
    ("今天", "今天"), ("明天", "明天"), ("昨天晚上", "昨天晚上"), ("那年冬天", "那年冬天"), ("过几天", "過幾天"),
    ("现在", "現在"), ("等一会儿", "等一會兒"), ("下个月", "下個月"), ("每天早上", "每天早上"),
    ("小时候", "小時候"), ("后来", "後來"), ("刚才", "剛才"),
)  # fmt: skip
_ZH_ADVERBS = (("又", "又"), ("已经", "已經"), ("也", "也"), ("早就", "早就"), ("偷偷地", "偷偷地"))
_ZH_VERBS = (
    ("回家吃饭", "回家吃飯"), ("去车站等车", "去車站等車"), ("给家里打电话", "給家裡打電話"),
    ("在厂里加班", "在工廠裡加班"), ("去县城看病", "去縣城看病"), ("把钱还给人家", "把錢還給人家"),
    ("去南方打工", "去南方打工"), ("在河边钓鱼", "在河邊釣魚"), ("收拾行李", "收拾行李"),
    ("说这些话", "說這些話"), ("想起那件事", "想起那件事"), ("等你回来", "等你回來"),
    ("骑车去学校", "騎車去學校"), ("帮邻居修屋顶", "幫鄰居修屋頂"), ("熬夜看书", "熬夜看書"),
    ("在门口抽烟", "在門口抽菸"), ("去医院看奶奶", "去醫院看奶奶"), ("坐最后一班车", "坐最後一班車"),
    ("给你写信", "給你寫信"), ("做你爱吃的菜", "做你愛吃的菜"), ("把围巾还给我", "把圍巾還給我"),
    ("去山那边看看", "去山那邊看看"),
)  # fmt: skip
_ZH_LINES = (
    ("你别管了。", "你別管了。"), ("算了，不说了。", "算了，不說了。"), ("嗯。", "嗯。"), ("怎么了？", "怎麼了？"),
    ("没事，你睡吧。", "沒事，你睡吧。"), ("我知道。", "我知道。"), ("真的吗？", "真的嗎？"),
    ("快走吧，要下雨了。", "快走吧，要下雨了。"), ("你听我说。", "你聽我說。"), ("对不起。", "對不起。"),
    ("谢谢你。", "謝謝你。"), ("这么晚了，你去哪儿？", "這麼晚了，你去哪裡？"), ("外面好冷啊。", "外面好冷啊。"),
    ("饭菜都凉了。", "飯菜都涼了。"), ("我们回不去了。", "我們回不去了。"), ("你还记得吗？", "你還記得嗎？"),
    ("火车票我已经买好了。", "火車票我已經買好了。"), ("别哭了，好吗？", "別哭了，好嗎？"),
)  # fmt: skip
_EN_SUBJECTS = (
    ("I", "I"), ("You", "you"), ("He", "he"), ("She", "she"), ("We", "we"), ("They", "they"), ("Mum", "Mum"),
    ("Dad", "Dad"), ("Grandma", "Grandma"), ("The teacher", "the teacher"), ("The foreman", "the foreman"),
    ("Your brother", "your brother"),
)  # fmt: skip
_EN_TIMES = ("Yesterday", "That winter", "Last night", "Back then", "This morning", "Later", "Every morning")
_EN_VERBS = (  # (past, base)
    ("went home for dinner", "go home for dinner"), ("waited at the station", "wait at the station"),
    ("called home", "call home"), ("worked late at the factory", "work late at the factory"),
    ("went to the county town to see a doctor", "go to the county town to see a doctor"),
    ("paid the money back", "pay the money back"), ("went south to find work", "go south to find work"),
    ("fished by the river", "fish by the river"), ("packed the bags", "pack the bags"),
    ("said those things", "say those things"), ("stayed up reading", "stay up reading"),
    ("fixed the neighbours' roof", "fix the neighbours' roof"), ("took the last bus", "take the last bus"),
    ("wrote you a letter", "write you a letter"), ("cooked your favourite dish", "cook your favourite dish"),
    ("smoked by the door", "smoke by the door"), ("gave the scarf back", "give the scarf back"),
)  # fmt: skip
_EN_LINES = (
    "Forget it.", "Don't worry about me.", "What's wrong?", "It's nothing, go to sleep.", "I know.", "Really?",
    "Let's go, it's going to rain.", "Listen to me.", "I'm sorry.", "Thank you.", "Where are you going this late?",
    "It's so cold out there.", "The food's gone cold.", "We can't go back.", "Do you remember?",
    "Bread & pickles again?", "I've already bought the train ticket.",
)  # fmt: skip


@dataclass(frozen=True)
class Cue:
    """One cue: milliseconds (multiples of 10, so ASS centiseconds hold them exactly) and its
    lines, as a viewer reads them in each language."""

    start: int
    end: int
    simplified: tuple[str, ...]
    traditional: tuple[str, ...]
    english: tuple[str, ...]


def _zh_sentence(rng: random.Random) -> tuple[str, str]:
    """One line of dialogue, simplified and traditional, from a handful of everyday patterns."""
    s, t, a, v = (rng.choice(x) for x in (_ZH_SUBJECTS, _ZH_TIMES, _ZH_ADVERBS, _ZH_VERBS))
    pattern = rng.randrange(6)
    if pattern == 0:
        return f"{t[0]}{s[0]}{v[0]}吧。", f"{t[1]}{s[1]}{v[1]}吧。"
    if pattern == 1:
        return f"{s[0]}{a[0]}{v[0]}了。", f"{s[1]}{a[1]}{v[1]}了。"
    if pattern == 2:
        return f"{s[0]}真的要{v[0]}吗？", f"{s[1]}真的要{v[1]}嗎？"
    if pattern == 3:
        return f"{t[0]}，{s[0]}{v[0]}。", f"{t[1]}，{s[1]}{v[1]}。"
    if pattern == 4:
        year = rng.randrange(1978, 2009)  # digits at a line's end, as SubRip cue numbers are
        return f"那是{year}年的事了。", f"那是{year}年的事了。"
    line = rng.choice(_ZH_LINES)
    return line[0], line[1]


def _en_sentence(rng: random.Random) -> str:
    (s, s_mid), t, (past, base) = rng.choice(_EN_SUBJECTS), rng.choice(_EN_TIMES), rng.choice(_EN_VERBS)
    pattern = rng.randrange(6)
    if pattern == 0:
        return f"{t}, {s_mid} {past}."
    if pattern == 1:
        return f"{s} {past} again."
    if pattern == 2:
        return f"Did {s_mid} really {base}?"
    if pattern == 3:
        return f"{s} will {base} tomorrow."
    if pattern == 4:
        return f"That was back in {rng.randrange(1978, 2009)}."
    return rng.choice(_EN_LINES)


def dialogue(n: int = CUES, seconds: int = FILM_SECONDS, seed: int = SEED) -> list[Cue]:
    """``n`` cues spread over ``seconds`` of film (1.2 to 4.5 s on screen, irregular gaps), one
    in five an exchange of two lines ("— ..."): the same cues every time for the same arguments."""
    rng = random.Random(seed)
    shown = [rng.uniform(1.2, 4.5) for _ in range(n)]
    gaps = [rng.uniform(0.1, 4.0) for _ in range(n)]
    scale = (seconds - 20) / (sum(shown) + sum(gaps))
    cues: list[Cue] = []
    t = 10.0
    for on, gap in zip(shown, gaps, strict=True):
        start, end = round(t * 100) * 10, round((t + on * scale) * 100) * 10
        if rng.random() < 0.2:
            (s1, t1), (s2, t2) = _zh_sentence(rng), _zh_sentence(rng)
            zh_s, zh_t = (f"— {s1}", f"— {s2}"), (f"— {t1}", f"— {t2}")
            en: tuple[str, ...] = (f"— {_en_sentence(rng)}", f"— {_en_sentence(rng)}")
        else:
            s1, t1 = _zh_sentence(rng)
            zh_s, zh_t, en = (s1,), (t1,), (_en_sentence(rng),)
        cues.append(Cue(start, end, zh_s, zh_t, en))
        t += (on + gap) * scale
    return cues


def _srt_time(ms: int) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def _ass_time(ms: int) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h}:{m:02d}:{s:02d}.{ms // 10:02d}"


def srt_text(cues: Sequence[Cue], lines: Callable[[Cue], tuple[str, ...]]) -> str:
    """SubRip text (LF newlines) of ``cues`` in the language ``lines`` picks."""
    return "\n".join(
        f"{n}\n{_srt_time(c.start)} --> {_srt_time(c.end)}\n" + "\n".join(lines(c)) + "\n"
        for n, c in enumerate(cues, 1)
    )


#: an Aegisub-style script header: the credit fields convert_file drops (and the privacy check
#: then looks for in the track)
_ASS_HEAD = """[Script Info]
; Script generated by Aegisub 3.2.2
; http://www.aegisub.org/
Title: 县城的夜晚
ScriptType: v4.00+
Original Script: 字幕组
Original Translation: 翻译组
Update Details: 校对第二版
WrapStyle: 0
PlayResX: 1920
PlayResY: 1080
ScaledBorderAndShadow: yes
YCbCr Matrix: TV.709

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, \
Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, \
MarginV, Encoding
Style: Default,Source Han Sans SC,64,&H00FFFFFF,&H000000FF,&H00000000,&H64000000,0,0,0,0,100,100,0,0,1,2.5,1,2,\
40,40,40,1
Style: Sign,Source Han Serif SC,56,&H00FFFFFF,&H000000FF,&H00000000,&H64000000,0,1,0,0,100,100,0,0,1,2,0,8,\
40,40,60,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""


def ass_text(cues: Sequence[Cue]) -> str:
    """An ASS script of ``cues`` in simplified Chinese: every tenth cue in italics (an override
    tag), every fiftieth followed by a translator's ``Comment:`` event, both dropped from a track."""
    events = []
    for n, c in enumerate(cues):
        text = r"\N".join(c.simplified)
        if n % 10 == 0:
            text = r"{\i1}" + text + r"{\i0}"
        events.append(f"Dialogue: 0,{_ass_time(c.start)},{_ass_time(c.end)},Default,,0,0,0,,{text}")
        if n % 50 == 0:
            events.append(f"Comment: 0,{_ass_time(c.start)},{_ass_time(c.end)},Default,,0,0,0,,这句再对一下时间")
    return _ASS_HEAD + "\n".join(events) + "\n"


@dataclass(frozen=True)
class SubtitleFile:
    """A written subtitle file: its language (as its name says), the codec it is encoded in and the
    cue text a viewer should read from it (lines joined by "\\n")."""

    path: Path
    language: str
    codec: str
    texts: tuple[str, ...]


def write_subtitles(folder: Path, cues: Sequence[Cue]) -> list[SubtitleFile]:
    """The four subtitle files of a film, as they come from the people who make them:
    ``film.zh-Hans.srt`` GB18030 with CRLF (a mainland editor), ``film.zh-Hant.srt`` Big5 with
    CRLF (Taiwan), ``film.en.srt`` UTF-8 with LF, and ``film.zh.ass`` UTF-8 with a byte-order mark
    and CRLF (Aegisub on Windows). Raises UnicodeEncodeError if a line cannot be encoded (the
    dialogue tables are wrong then)."""
    folder.mkdir(parents=True, exist_ok=True)

    def simplified(c: Cue) -> tuple[str, ...]:
        return c.simplified

    def traditional(c: Cue) -> tuple[str, ...]:
        return c.traditional

    def english(c: Cue) -> tuple[str, ...]:
        return c.english

    out = []
    for name, language, codec, text, pick, bom, crlf in (
        ("film.zh-Hans.srt", "zh-Hans", "gb18030", srt_text(cues, simplified), simplified, b"", True),
        ("film.zh-Hant.srt", "zh-Hant", "big5", srt_text(cues, traditional), traditional, b"", True),
        ("film.en.srt", "en", "utf-8", srt_text(cues, english), english, b"", False),
        ("film.zh.ass", "zh", "utf-8", ass_text(cues), simplified, b"\xef\xbb\xbf", True),
    ):
        path = folder / name
        path.write_bytes(bom + (text.replace("\n", "\r\n") if crlf else text).encode(codec))
        out.append(SubtitleFile(path, language, codec, tuple("\n".join(pick(c)) for c in cues)))
    return out


# -- B14: a feature film's subtitles to WebVTT -------------------------------------------------------
def convert(sub: SubtitleFile, dst: Path, max_bytes: int = MAX_BYTES) -> TrackFinding:
    """What an ingest does with one subtitle file (no sidecar note: the language from the name)."""
    return subtitles.convert_file(
        sub.path,
        dst,
        source=f"objects/{sub.path.name}",
        language=sub.language,
        language_from="file name",
        max_bytes=max_bytes,
    )


def decode_and_write(sub: SubtitleFile, dst: Path) -> None:
    """The baseline: the bytes read, decoded with the codec known beforehand, written as UTF-8."""
    dst.write_bytes(sub.path.read_bytes().decode(sub.codec).encode("utf-8"))


def checked(sub: SubtitleFile, dst: Path) -> TrackFinding:
    """One conversion, which must have made a track of every cue, decoded with the right codec,
    whose cue text (read back by webvtt-py) is the text written; the finding."""
    finding = convert(sub, dst)
    problem = ""
    if finding.outcome is not TrackOutcome.CONVERTED or finding.track is None:
        problem = f"was not converted: {finding.outcome.value}: {finding.detail}"
    elif finding.encoding not in (sub.codec, "utf-8-sig"):
        problem = f"was decoded as {finding.encoding} ({finding.how}), not {sub.codec}"
    elif tuple(text for _s, _e, text in subtitles.read_cues(dst)) != sub.texts:
        problem = "became a track whose cue text is not the text written"
    if problem:
        raise RuntimeError(f"the benchmark's {sub.path.name} {problem}")
    return finding


#: run in a Python of its own, importing only the subtitles module: the peak RSS (VmHWM, exact,
#: not sampled) before and after one conversion
_MEMORY_CHILD = """
import json, sys
from pathlib import Path

def hwm():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0

from preserve.access import subtitles
src, dst, language, limit = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
before = hwm()
finding = subtitles.convert_file(
    src, dst, source="objects/" + src.name, language=language, language_from="file name", max_bytes=limit
)
print(json.dumps({"before_bytes": before, "peak_bytes": hwm(), "outcome": finding.outcome.value}))
"""


def conversion_memory(sub: SubtitleFile, dst: Path) -> dict[str, Any]:
    """The peak RSS of a process that imports `preserve.access.subtitles` and converts ``sub``
    once: {"before_bytes": after the imports, "peak_bytes": after the conversion, "outcome"}."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEMORY_CHILD, str(sub.path), str(dst), sub.language, str(MAX_BYTES)],
        cwd=REPO,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the conversion's memory child failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["outcome"] != TrackOutcome.CONVERTED.value:
        raise RuntimeError(f"the memory child's conversion of {sub.path.name} was {result['outcome']}")
    return result


def python_peaks(sub: SubtitleFile, dst: Path) -> dict[str, int]:
    """tracemalloc's peak of the Python allocations of one conversion, in bytes (not timed): as an
    ingest calls it ("limit": the [access] subtitle_max_bytes default), and with ``max_bytes`` the
    file's own size ("file_size"). convert_file reads with ``read(max_bytes + 1)``, which allocates
    that much at once (untouched beyond the file's bytes, so not resident); the second figure is
    the conversion's own peak."""
    peaks = {}
    for name, limit in (("limit", MAX_BYTES), ("file_size", sub.path.stat().st_size)):
        tracemalloc.start()
        try:
            convert(sub, dst, limit)
            peaks[name] = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    return peaks


def subtitles_to_webvtt(ctx: Context) -> None:
    """B14: per file (GB18030, Big5), a warm-up conversion (checked: every cue, the right codec,
    the same text), then per run the conversion and the baseline in alternating order; once, the
    peak RSS of a process converting it, and tracemalloc's peak in this one."""
    work = ctx.archive.work / "b14"
    files = [s for s in write_subtitles(work / "in", dialogue()) if s.codec in ("gb18030", "big5")]
    out = work / "out"
    out.mkdir(parents=True, exist_ok=True)
    runs: dict[str, Any] = {"cues": CUES, "film_seconds": FILM_SECONDS}
    for sub in files:
        key = sub.codec
        track, plain = out / f"{key}.vtt", out / f"{key}.utf8.srt"
        ctx.log(f"B14: {sub.path.name} ({sub.path.stat().st_size / 1000:.0f} kB, {sub.codec}): checked warm-up")
        finding = checked(sub, track)
        runs[f"{key}_bytes"] = sub.path.stat().st_size
        runs[f"{key}_track_bytes"] = track.stat().st_size
        runs[f"{key}_detected"] = {"encoding": finding.encoding, "how": finding.how, "dropped": finding.dropped}
        runs[f"{key}_convert_s"], runs[f"{key}_baseline_s"] = [], []
        for i in range(ctx.repeat):

            def ours(key: str = key, sub: SubtitleFile = sub, track: Path = track) -> None:
                track.unlink(missing_ok=True)
                t, found = timed(lambda: convert(sub, track))
                if found.outcome is not TrackOutcome.CONVERTED:
                    raise RuntimeError(f"B14: {sub.path.name} was not converted: {found.outcome.value}")
                runs[f"{key}_convert_s"].append(t)

            def baseline(key: str = key, sub: SubtitleFile = sub, plain: Path = plain) -> None:
                plain.unlink(missing_ok=True)
                runs[f"{key}_baseline_s"].append(timed(lambda: decode_and_write(sub, plain))[0])

            ctx.log(f"B14 run {i + 1}/{ctx.repeat}: {sub.codec} file, convert_file and decode + write")
            for step in (ours, baseline) if i % 2 == 0 else (baseline, ours):
                settle()
                step()
        runs[f"{key}_memory"] = conversion_memory(sub, out / f"{key}.memory.vtt")
        runs[f"{key}_tracemalloc_peak_bytes"] = python_peaks(sub, out / f"{key}.traced.vtt")
    shutil.rmtree(work, ignore_errors=True)
    ctx.rows.append(_b14_row(ctx, runs))


def _b14_row(ctx: Context, runs: dict[str, Any]) -> Row:
    per = {k: (median(runs[f"{k}_convert_s"]), median(runs[f"{k}_baseline_s"])) for k in ("gb18030", "big5")}
    ours, base = sum(c for c, _ in per.values()) / 2, sum(b for _, b in per.values()) / 2
    peak = max(runs[f"{k}_memory"]["peak_bytes"] for k in per)
    before = max(runs[f"{k}_memory"]["before_bytes"] for k in per)
    traced = {m: max(runs[f"{k}_tracemalloc_peak_bytes"][m] for k in per) for m in ("limit", "file_size")}
    detected = "; ".join(f"{k}: {runs[f'{k}_detected']['how']}" for k in per)
    return Row(
        "B14",
        f"subtitles to WebVTT, a {FILM_SECONDS // 3600} h film's {CUES:,} cues (GB18030 and Big5, CRLF), convert_file",
        f"{seconds(ours)} per file (GB18030 {seconds(per['gb18030'][0])}, Big5 {seconds(per['big5'][0])}); "
        f"peak RSS {mib(peak)}",
        f"read + decode with the known codec + write UTF-8: {base * 1000:.1f} ms per file",
        ours / base,
        "× decode + write",
        "– (issue 15 sets none)",
        None,
        runs=runs,
        notes=[
            f"files {runs['gb18030_bytes'] / 1000:.0f} kB (GB18030) and {runs['big5_bytes'] / 1000:.0f} kB (Big5), "
            f"generated dialogue; each converted once untimed first (imports, and checked: every cue, the right "
            f"codec, the cue text read back equal to the text written)",
            f"per file: GB18030 {per['gb18030'][0] / per['gb18030'][1]:.0f}×, Big5 {per['big5'][0] / per['big5'][1]:.0f}× "
            "the baseline; convert_file decodes by detection (charset-normalizer's mess ratio over the whole text "
            "for each candidate codec), parses with pysubs2, writes, reads back with webvtt-py and runs the privacy "
            "check",
            f"peak RSS (VmHWM) of a Python process that imports the subtitles module and converts one file: "
            f"{mib(peak)}, {mib(before)} of it before the conversion (the interpreter and the imports)",
            f"tracemalloc peak of one conversion {traced['limit'] / 1e6:.1f} MB as an ingest calls it: convert_file "
            f"reads with read(subtitle_max_bytes + 1), a {MAX_BYTES / 1e6:.1f} MB buffer allocated at once and not "
            f"resident (untouched past the file); with max_bytes the file's size {traced['file_size'] / 1e6:.1f} MB",
            f"detected: {detected}",
        ],
        ratio_format="{:.0f}",
    )


# -- B15: the access package's cost in an ingest -------------------------------------------------------
SIDECAR = "title: An evening in a county town\noriginal_title: 县城的夜晚\nyear: 2009\naccess: open\n"
#: the three ingests of B15: the folder with its subtitle files (tracks made), without them, and
#: with them under `[access] subtitle_tracks = false`
VARIANTS = ("tracks", "bare", "off")


def submission(ctx: Context) -> Path:
    """The cached submission folder: a copy of the clip as ``film.mov`` (a hard link would be
    refused by intake) and the sidecar; the subtitle files are put in per run (`arrange`)."""
    folder = ctx.data.clip.parent / f"access-{ctx.data.clip.stem}"
    film = folder / "film.mov"
    if not (film.is_file() and film.stat().st_size == ctx.data.clip.stat().st_size):
        folder.mkdir(exist_ok=True)
        tmp = folder / ".film.mov.partial"
        shutil.copyfile(ctx.data.clip, tmp)
        tmp.replace(film)
    (folder / "metadata.yaml").write_text(SIDECAR, encoding="utf-8")
    return folder


def arrange(folder: Path, subs: Sequence[SubtitleFile], with_subtitles: bool) -> None:
    """The subtitle files in ``folder`` (copied) or none at all, whatever an earlier run left."""
    for p in folder.iterdir():
        if subtitles.is_subtitle_file(p.name):
            p.unlink()
    if with_subtitles:
        for s in subs:
            shutil.copyfile(s.path, folder / s.path.name)


def _copies(ctx: Context, overrides: dict[str, Any], aip_id: str) -> dict[str, int]:
    """The access copies the catalog records for the AIP, counted by kind."""
    settings = ctx.archive.settings(overrides)
    with Catalog(settings.catalog_url) as catalog:
        view = catalog.get_aip(aip_id)
    if view is None:
        raise RuntimeError("B15: the ingested AIP is not in the catalog")
    kinds: dict[str, int] = {}
    for a in view.access:
        kinds[a.kind] = kinds.get(a.kind, 0) + 1
    return kinds


def ingest_cost(ctx: Context) -> None:
    """B15: per run, three full ingests of the clip's folder (access open, filesystem replica, the
    access copies published to the S3 access target), in rotating order: with its four subtitle
    files, without them, and with them but subtitle tracks off; each checked for what it made
    (four tracks, or none; a manifest and a page always)."""
    a = ctx.archive
    subs = write_subtitles(a.work / "b15-subtitles", dialogue())
    folder = submission(ctx)
    keys = ("seconds", "process_seconds", "make_access_s", "publish_s", "peak_tree_bytes", "copies", "steps")
    runs: dict[str, Any] = {f"{v}_{k}": [] for v in VARIANTS for k in keys}
    try:
        for i in range(ctx.repeat):
            for variant in VARIANTS if i % 2 == 0 else VARIANTS[::-1]:
                run = f"access-{variant}-{i}"
                extra: dict[str, Any] = {"access": {"subtitle_tracks": variant != "off"}}
                overrides = a.overrides(run, ("local",), extra=extra)
                arrange(folder, subs, variant != "bare")
                ctx.log(f"B15 run {i + 1}/{ctx.repeat}: full ingest of the clip, {variant}")
                settle()
                res = ingest(ctx, run, folder, overrides)
                copies = _copies(ctx, overrides, res["aip_id"])
                want = len(subs) if variant == "tracks" else 0
                if copies.get(KIND_TRACK, 0) != want or not copies.get(KIND_MANIFEST) or not copies.get(KIND_PAGE):
                    raise RuntimeError(
                        f"B15 {variant}: the ingest made {copies}, not {want} tracks, a manifest, a page"
                    )
                for k, value in (
                    ("seconds", res["seconds"]),
                    ("process_seconds", res["process_seconds"]),
                    ("make_access_s", step_seconds(res, "make_access")),
                    ("publish_s", step_seconds(res, "publish")),
                    ("peak_tree_bytes", res["memory"]["peak_tree_bytes"]),
                    ("copies", copies),
                    ("steps", res["steps"]),
                ):
                    runs[f"{variant}_{k}"].append(value)
                a.forget_run(run)
    finally:
        arrange(folder, subs, False)
    ctx.rows.append(_b15_row(ctx, runs, subs))


def _step_medians(runs: dict[str, Any], variant: str) -> dict[str, float]:
    """Each pipeline step's median seconds over one variant's runs."""
    by_step: dict[str, list[float]] = {}
    for steps in runs[f"{variant}_steps"]:
        for step in steps:
            by_step.setdefault(step["step"], []).append(step["seconds"])
    return {name: median(values) for name, values in by_step.items()}


def _outside(steps: list[dict[str, Any]], *names: str) -> float:
    """The seconds of one ingest's steps other than ``names``, together."""
    return float(sum(s["seconds"] for s in steps if s["step"] not in names))


def _deltas(a: dict[str, float], b: dict[str, float], at_least: float = 0.05) -> str:
    """The steps whose medians differ by ``at_least`` seconds or more, as "+0.80 s characterise"."""
    d = {k: a.get(k, 0.0) - b.get(k, 0.0) for k in a.keys() | b.keys()}
    shown = [f"{name} {v:+.2f} s" for name, v in sorted(d.items(), key=lambda kv: -abs(kv[1])) if abs(v) >= at_least]
    return ", ".join(shown) or "none"


def _b15_row(ctx: Context, runs: dict[str, Any], subs: Sequence[SubtitleFile]) -> Row:
    t = {v: median(runs[f"{v}_seconds"]) for v in VARIANTS}
    step = {v: _step_medians(runs, v) for v in VARIANTS}
    access = {v: step[v].get("make_access", 0.0) + step[v].get("publish", 0.0) for v in VARIANTS}
    rss = {v: median(runs[f"{v}_peak_tree_bytes"]) for v in VARIANTS}
    # the film's decode (validate: decode check, framemd5 and proxy in one ffmpeg run) is most of an
    # ingest and what varies most under load; subtitles do not touch it
    rest = {v: median([_outside(steps, "validate") for steps in runs[f"{v}_steps"]]) for v in VARIANTS}
    decode = [s["seconds"] for v in VARIANTS for steps in runs[f"{v}_steps"] for s in steps if s["step"] == "validate"]
    secs = ctx.data.sizes.clip_seconds
    kb = sum(s.path.stat().st_size for s in subs) / 1000
    return Row(
        "B15",
        f"the access package's text tracks in a full ingest of the {secs} s 1080p ProRes clip (access open), "
        f"4 subtitle files of {CUES:,} cues",
        f"{seconds(t['tracks'])} with 4 tracks (make_access + publish {seconds(access['tracks'])})",
        f"the same folder without subtitle files {seconds(t['bare'])} (make_access + publish "
        f"{seconds(access['bare'])}); with them, subtitle_tracks = false {seconds(t['off'])}",
        t["tracks"] / t["bare"],
        f"× without subtitles (total); make_access + publish {access['tracks'] / access['bare']:.2f}×",
        "– (issue 15 sets none; expected: a few percent at most)",
        None,
        runs=runs,
        notes=[
            f"with tracks {t['tracks'] - t['bare']:+.2f} s ({t['tracks'] / t['bare'] - 1:+.1%}) over no subtitle "
            f"files, {t['tracks'] - t['off']:+.2f} s ({t['tracks'] / t['off'] - 1:+.1%}) over the same files with "
            f"subtitle_tracks = false (preserved, not converted: {t['off'] / t['bare']:.3f}× no subtitle files)",
            f"validate took {min(decode):.1f} to {max(decode):.1f} s over the {len(decode)} ingests: where that spread "
            "is larger than the tracks' cost, the total's ratio is noise and the steps below are the measurement",
            f"every step but validate (the film's decode, proxy included, which subtitles do not touch): "
            f"{seconds(rest['tracks'])} with tracks, {seconds(rest['bare'])} without subtitle files "
            f"({rest['tracks'] / rest['bare']:.2f}×), {seconds(rest['off'])} with tracks off",
            f"by step (medians), tracks - no subtitle files: {_deltas(step['tracks'], step['bare'])}; tracks - "
            f"tracks off: {_deltas(step['tracks'], step['off'])}",
            f"the subtitle files: en UTF-8, zh-Hans GB18030 and zh-Hant Big5 SubRip with CRLF, a zh ASS "
            f"(UTF-8 with BOM), {CUES:,} cues each over {FILM_SECONDS // 3600} h ({kb:.0f} kB in all), on a "
            f"{secs} s film: a feature's subtitles on a short clip, so the share is an upper bound",
            "the IIIF manifest and the page are made in every variant; one filesystem replica, decode check, "
            f"framemd5, proxy, poster, contact sheet; peak RSS of the process tree {mib(rss['tracks'])} with tracks, "
            f"{mib(rss['bare'])} without",
        ],
        ratio_format="{:.3f}",
    )
