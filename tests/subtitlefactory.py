"""Subtitle fixtures for the access-track tests, written in every encoding and form a submission
brings: realistic Chinese dialogue (simplified for GB18030, traditional for Big5, both written for
these tests), English, SubRip in any encoding with CRLF or LF and with or without a byte-order
mark, an ASS file whose headers and fields name people, a WebVTT file with NOTE/STYLE/REGION
blocks, cue identifiers and voice spans, and a Matroska clip with subtitle streams (text ones
muxed by ffmpeg, a DVD bitmap one written by hand: ffmpeg cannot make bitmap subtitles from
text). Writes only the paths it is given."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.mediafactory import ffmpeg, make_clip

#: a night in a county town: 26 cues of mainland dialogue (two with characters GBK lacks)
SIMPLIFIED = (
    "天快黑了，我们还是早点回去吧。",
    "你爸今天又没回家吃饭？",
    "他说厂里加班，谁知道呢。",
    "这条路我小时候走过很多次。",
    "那时候河边还没有这些楼。",
    "妈，你别担心，我一个人能行。",
    "火车票我已经买好了，明天早上七点。",
    "到了北京记得给家里打个电话。",
    "我不想一辈子待在这个小县城里。",
    "外面的世界没有你想的那么好。",
    "可是我总得自己去看一看。",
    "你还记得我们第一次见面的地方吗？",
    "就在那个卖烤红薯的小摊旁边。",
    "那天下着大雪，你的手冻得通红。",
    "我把围巾给了你，你一直没还我。",
    "我留着呢，每年冬天都拿出来戴。",
    "老师说我的作文写得不错，让我去参加比赛。",
    "别管别人怎么说，做你自己想做的事。",
    "钱的事你不用操心，我来想办法。",
    "这些年，谢谢你一直陪着我。",
    "— 你去哪儿？\n— 我去车站送送他。",
    "这个“䶮”字，我查了半天字典。",
    "奶奶名字里的“𬌗”字，电脑打不出来。",
    "雨停了，我们出去走走吧。",
    "你看，山那边的天空亮起来了。",
    "明年春天，我一定回来看你。",
)
#: a night in a harbour town: 24 cues of Taiwanese dialogue, all in Big5
TRADITIONAL = (
    "天快黑了，我們還是早點回去吧。",
    "你爸今天又沒回家吃飯？",
    "他說工廠裡加班，誰知道呢。",
    "這條路我小時候走過很多次。",
    "那時候河邊還沒有這些大樓。",
    "媽，你別擔心，我一個人可以的。",
    "火車票我已經買好了，明天早上七點。",
    "到了台北記得給家裡打個電話。",
    "我不想一輩子待在這個小鎮上。",
    "外面的世界沒有你想的那麼好。",
    "可是我總得自己去看一看。",
    "你還記得我們第一次見面的地方嗎？",
    "就在那個賣烤地瓜的小攤旁邊。",
    "那天下著大雨，你全身都濕透了。",
    "我把雨傘給了你，你一直沒還我。",
    "我留著呢，每年夏天都拿出來用。",
    "老師說我的作文寫得不錯，要我去參加比賽。",
    "別管別人怎麼說，做你自己想做的事。",
    "— 你要去哪裡？\n— 我去車站送他。",
    "這些年，謝謝你一直陪著我。",
    "雨停了，我們出去走走吧。",
    "你看，山那邊的天空亮起來了。",
    "明年春天，我一定回來看你。",
    "好，我等你。",
)
ENGLISH = (
    "It's getting dark. We should go back.",
    "Your dad skipped dinner again?",
    "He says the factory's working late. Who knows.",
    "I've already bought the train ticket: seven tomorrow morning.",
    "Call home when you get to Beijing & don't forget.",
    "— Where are you going?\n— To the station, to see him off.",
    "Le café est fermé, déjà ? Ça alors.",
    "Next spring, I'll come back to see you.",
)
#: a GB18030 file this short reads as Big5 too (with other text): undecidable, as it should be
SHORT_SIMPLIFIED = ("好，我等你。",)


@dataclass(frozen=True)
class Cue:
    """A cue as a viewer reads it: milliseconds and the text (lines joined by "\\n")."""

    start: int
    end: int
    text: str

    @property
    def seconds(self) -> tuple[float, float, str]:
        return (self.start / 1000, self.end / 1000, self.text)


def cues_of(lines: Sequence[str], *, step: int = 10) -> list[Cue]:
    """Cues for ``lines``, one every few seconds, at irregular milliseconds (rounded to ``step``
    ms: 10 for ASS, whose times are centiseconds)."""
    out = []
    for i, text in enumerate(lines):
        start = 1000 + i * 3100 + (i * 137) % 1000
        end = start + 1800 + (i * 71) % 900
        out.append(Cue(start - start % step, end - end % step, text))
    return out


def srt_time(ms: int) -> str:
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def srt_text(cues: Sequence[Cue], *, preamble: str = "") -> str:
    """SubRip text for ``cues`` (LF newlines), after ``preamble`` lines if any."""
    blocks = [f"{n}\n{srt_time(c.start)} --> {srt_time(c.end)}\n{c.text}\n" for n, c in enumerate(cues, 1)]
    return preamble + "\n".join(blocks)


def encode(text: str, encoding: str, *, crlf: bool = False, bom: bool = False) -> bytes:
    """``text`` as a file would hold it: CRLF newlines if asked, a byte-order mark if asked
    (UTF-8, UTF-16LE/BE, UTF-32LE), else none (Python's "utf-16" writes one itself)."""
    if crlf:
        text = text.replace("\n", "\r\n")
    marks = {
        "utf-8": b"\xef\xbb\xbf",
        "utf-16-le": b"\xff\xfe",
        "utf-16-be": b"\xfe\xff",
        "utf-32-le": b"\xff\xfe\x00\x00",
    }
    return (marks[encoding] if bom else b"") + text.encode(encoding)


def write_srt(path: Path, cues: Sequence[Cue], encoding: str, *, crlf: bool = False, bom: bool = False) -> Path:
    path.write_bytes(encode(srt_text(cues), encoding, crlf=crlf, bom=bom))
    return path


# -- SubRip with markup ----------------------------------------------------------------------------
SRT_MARKUP = (
    "Subtitles: Wang Xiaoming\n"
    "\n"
    "1\n"
    "00:00:01,000 --> 00:00:02,500\n"
    '{\\an8}<font color="#ffff00">Tom & Jerry</font>\n'
    "\n"
    "2\n"
    "00:00:03,000 --> 00:00:04,000\n"
    "<i>Italic</i> and <b>bold</b>\n"
    "<u>under</u> <laughs> 1 < 2 --> 3\n"
    "\n"
    "3\n"
    "00:00:05,000 --> 00:00:06,000\n"
    "The year was\n"
    "1989\n"
)
SRT_MARKUP_CUES = [
    Cue(1000, 2500, "Tom & Jerry"),
    Cue(3000, 4000, "Italic and bold\nunder <laughs> 1 < 2 --> 3"),
    Cue(5000, 6000, "The year was\n1989"),
]

# -- ASS with credits -------------------------------------------------------------------------------
#: every name and identifying value the ASS and WebVTT fixtures plant in their headers and fields
PLANTED = (
    "李建国",
    "Chen Jingyi",
    "chenjingyi",
    "赵小红",
    "Wang Xiaoming",
    "王小明",
    "wangxiaoming",
    "周警官",
    "Source Han Sans",
    "Banner",
    "TL note",
    "夜车",
    "festival",
    "yellow",
)
_STYLE_FORMAT = (
    "Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, "
    "Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, "
    "MarginR, MarginV, Encoding"
)


def ass_text(*, extra_dialogue: str = "") -> str:
    """An Aegisub-style ASS script whose headers credit a translator, an editor and a timer, whose
    Name fields name a speaker, with override tags, an inline comment, a drawing, a Comment event
    and an Effect; ``extra_dialogue`` is one more Dialogue text (at 0:01:10)."""
    lines = [
        "[Script Info]",
        "; Script generated by Aegisub 3.2.2",
        "; 翻译：王小明",
        "Title: 夜车",
        "Original Script: 李建国",
        "Original Translation: Chen Jingyi",
        "Original Timing: 赵小红",
        "Update Details: 校对 by Wang Xiaoming",
        "ScriptType: v4.00+",
        "WrapStyle: 0",
        "PlayResX: 1920",
        "PlayResY: 1080",
        "ScaledBorderAndShadow: yes",
        "YCbCr Matrix: TV.709",
        "Translator Contact: chenjingyi@example.org",
        "",
        "[Aegisub Project Garbage]",
        "Audio File: /home/wangxiaoming/夜车.mkv",
        "Video File: /home/wangxiaoming/夜车.mkv",
        "",
        "[V4+ Styles]",
        _STYLE_FORMAT,
        "Style: Default,Source Han Sans SC,60,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,2,1,2,10,10,40,1",
        "Style: Sign,Source Han Sans SC Bold,40,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,-1,0,0,0,100,100,0,0,1,2,1,8,10,10,40,1",
        "",
        "[Events]",
        "Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
        "Comment: 0,0:00:00.00,0:00:00.50,Default,Chen Jingyi,0,0,0,,翻译：Chen Jingyi 校对：赵小红",
        "Dialogue: 0,0:00:01.23,0:00:03.45,Default,周警官,0,0,0,,{\\an8}天快黑了，{\\i1}我们{\\i0}还是早点回去吧。",
        "Dialogue: 0,0:00:04.00,0:00:06.07,Default,,0,0,0,,第一行\\N第二行{TL note: 王小明 wrote this}\\N",
        "Dialogue: 0,0:00:06.50,0:00:08.99,Sign,,0,0,0,Banner;5,{\\pos(960,540)\\fad(200,200)\\b1}火车站{\\b0}",
        "Dialogue: 0,0:00:09.00,0:00:11.00,Default,,0,0,0,,软\\n换行\\h和空格 & <不是标签>",
        "Dialogue: 1,0:00:09.00,0:00:11.00,Sign,,0,0,0,,{\\p1}m 0 0 l 100 0 100 100 0 100{\\p0}",
        "Dialogue: 0,0:01:02.03,0:01:04.56,Default,Chen Jingyi,0,0,0,,{\\u1}下划线{\\u0}和{\\b700}粗体{\\b0}\\N{\\fs80\\c&H00FFFF&}大字",
    ]
    if extra_dialogue:
        lines.append(f"Dialogue: 0,0:01:10.00,0:01:12.00,Default,,0,0,0,,{extra_dialogue}")
    return "\n".join(lines) + "\n"


ASS_CUES = [
    Cue(1230, 3450, "天快黑了，我们还是早点回去吧。"),
    Cue(4000, 6070, "第一行\n第二行"),
    Cue(6500, 8990, "火车站"),
    Cue(9000, 11000, "软 换行\u00a0和空格 & <不是标签>"),
    Cue(62030, 64560, "下划线和粗体\n大字"),
]

# -- WebVTT with blocks a track must not carry ------------------------------------------------------
VTT_TEXT = (
    "WEBVTT - 夜车 English subtitles by Wang Xiaoming\n"
    "Kind: captions\n"
    "Language: en\n"
    "\n"
    "REGION\n"
    "id:fred\n"
    "width:40%\n"
    "\n"
    "STYLE\n"
    "::cue { color: yellow }\n"
    "\n"
    "NOTE translated by Chen Jingyi\n"
    "for the festival copy\n"
    "\n"
    "1\n"
    "00:00:01.234 --> 00:00:03.456 align:start line:0\n"
    "<v Chen Jingyi>It's getting dark.</v>\n"
    "\n"
    "intro-2\n"
    "00:00:04.000 --> 00:00:06.070\n"
    "<i>We should</i> go back &amp; rest.\n"
    "<c.yellow>Tomorrow</c> at <b>seven</b>.\n"
    "\n"
    "NOTE second note: Wang Xiaoming\n"
    "\n"
    "00:01:02.030 --> 00:01:04.560\n"
    "1 &lt; 2 &gt; 0 — ruby <ruby>漢<rt>han</rt></ruby>\n"
)
#: the same without its REGION and STYLE blocks, which ffmpeg 5.1's WebVTT demuxer cannot read past
#: (it then reads no cue at all): for a WebVTT stream muxed into Matroska
VTT_STREAM_TEXT = VTT_TEXT.replace("REGION\nid:fred\nwidth:40%\n\n", "").replace(
    "STYLE\n::cue { color: yellow }\n\n", ""
)
VTT_CUES = [
    Cue(1234, 3456, "It's getting dark."),
    Cue(4000, 6070, "We should go back & rest.\nTomorrow at seven."),
    Cue(62030, 64560, "1 < 2 > 0 — ruby 漢han"),
]


# -- containers -------------------------------------------------------------------------------------
def mux(path: Path, clip: Path, subtitles: Sequence[tuple[Path, str, str]], *, fmt: str | None = None) -> Path:
    """``clip`` with each (subtitle file, language tag, codec) added as a stream, in order: codec
    "copy" keeps the file's packets as they are (a GB18030 SubRip stays GB18030 bytes); a ``.mpg``
    file is read as an MPEG program stream (`write_dvd_subtitles`)."""
    args = ["-i", str(clip)]
    for sub, _, _ in subtitles:
        args += [*(["-f", "mpeg"] if sub.suffix == ".mpg" else []), "-i", str(sub)]
    args += ["-map", "0"]
    for n in range(len(subtitles)):
        args += ["-map", str(n + 1)]
    args += ["-c:v", "copy", "-c:a", "copy"]
    for n, (_, language, codec) in enumerate(subtitles):
        args += [f"-c:s:{n}", codec, f"-metadata:s:s:{n}", f"language={language}"]
    if fmt:
        args += ["-f", fmt]
    ffmpeg([*args, str(path)])
    return path


def clip(path: Path) -> Path:
    """The 2-second test clip the containers are made from."""
    return make_clip(path, duration=2.0, size="160x120")


def _pts(pts: int) -> bytes:
    """An MPEG PES presentation time stamp (90 kHz) with its marker bits."""
    return bytes(
        [
            0x21 | (((pts >> 30) & 0x07) << 1),
            (pts >> 22) & 0xFF,
            (((pts >> 15) & 0x7F) << 1) | 1,
            (pts >> 7) & 0xFF,
            ((pts & 0x7F) << 1) | 1,
        ]
    )


def _spu() -> bytes:
    """A DVD subpicture unit: a 2x2 picture (two RLE lines), shown, then hidden 50 ticks later."""
    rle = b"\x90\x90"
    first = 4 + len(rle)
    shown = bytes(
        [0x01, 0x03, 0x32, 0x10, 0x04, 0xFF, 0xF0, 0x05, 0, 0, 0x01, 0, 0, 0x01, 0x06, 0, 0x04, 0, 0x05, 0xFF]
    )
    second = first + 4 + len(shown)
    body = rle + struct.pack(">HH", 0, second) + shown + struct.pack(">HH", 50, second) + bytes([0x02, 0xFF])
    return struct.pack(">HH", 4 + len(body), first) + body


def write_dvd_subtitles(path: Path, times: Sequence[float] = (0.5, 1.2)) -> Path:
    """An MPEG program stream holding only DVD subtitles (private stream 1, substream 0x20): a
    pack header and one PES packet per picture, at ``times`` seconds."""
    pack = b"\x00\x00\x01\xba" + bytes([0x44, 0x00, 0x04, 0x00, 0x04, 0x01, 0x01, 0x89, 0xC3, 0xF8])
    out = b""
    for t in times:
        payload = bytes([0x81, 0x80, 0x05]) + _pts(int(t * 90000)) + b"\x20" + _spu()
        out += pack + b"\x00\x00\x01\xbd" + struct.pack(">H", len(payload)) + payload
    path.write_bytes(out + b"\x00\x00\x01\xb9")
    return path
