# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a regex compiles as istiod and Envoy compile it, in pure Python
(the modules take no binary dependency).

istiod's webhook compiles every StringMatch regex with Go's regexp, Envoy
with RE2; both parse RE2's syntax. Python's `re` differs both ways (it takes
lookarounds, backreferences, `\\Z`, `(?x)`, and refuses `\\pL`,
`[[:alpha:]]`), so it cannot stand in. `re2_problem(text)` refuses what
either of the two refuses: where they differ (`\\C`, non-ASCII group names),
Go's refusal is istiod's. tests/unit/test_istio_validate_re2.py holds it
against the real RE2 (the google-re2 package, a test-only dependency).

Written for istio-lab from RE2's documented syntax
(github.com/google/re2/wiki/Syntax)."""

from __future__ import annotations

MAX_REPEAT = 1000  # RE2 and Go: {n,m} counts, and their nested product
MAX_DEPTH = 1000  # Go: "expression nests too deeply"
_FLAGS = set("imsU")
_PERL_CLASSES = set("dDsSwW")
_LITERAL_ESCAPES = set("aftnrv")
_OCTAL = set("01234567")
_HEX = set("0123456789abcdefABCDEF")
_POSIX_CLASSES = {
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct", "space", "upper",
    "word", "xdigit",
}
# Unicode general categories and scripts both parsers know (Unicode 15.0,
# the tables of the Go release istiod 1.30 is built with).
UNICODE_CLASSES = {"Any"} | set(
    "C Cc Cf Co Cs L Ll Lm Lo Lt Lu M Mc Me Mn N Nd Nl No P Pc Pd Pe Pf Pi Po Ps S Sc Sk Sm So Z Zl Zp Zs".split()
) | set("""
Adlam Ahom Anatolian_Hieroglyphs Arabic Armenian Avestan Balinese Bamum Bassa_Vah Batak Bengali Bhaiksuki Bopomofo
Brahmi Braille Buginese Buhid Canadian_Aboriginal Carian Caucasian_Albanian Chakma Cham Cherokee Chorasmian Common
Coptic Cuneiform Cypriot Cypro_Minoan Cyrillic Deseret Devanagari Dives_Akuru Dogra Duployan Egyptian_Hieroglyphs
Elbasan Elymaic Ethiopic Georgian Glagolitic Gothic Grantha Greek Gujarati Gunjala_Gondi Gurmukhi Han Hangul
Hanifi_Rohingya Hanunoo Hatran Hebrew Hiragana Imperial_Aramaic Inherited Inscriptional_Pahlavi
Inscriptional_Parthian Javanese Kaithi Kannada Katakana Kawi Kayah_Li Kharoshthi Khitan_Small_Script Khmer Khojki
Khudawadi Lao Latin Lepcha Limbu Linear_A Linear_B Lisu Lycian Lydian Mahajani Makasar Malayalam Mandaic Manichaean
Marchen Masaram_Gondi Medefaidrin Meetei_Mayek Mende_Kikakui Meroitic_Cursive Meroitic_Hieroglyphs Miao Modi
Mongolian Mro Multani Myanmar Nabataean Nag_Mundari Nandinagari New_Tai_Lue Newa Nko Nushu Nyiakeng_Puachue_Hmong
Ogham Ol_Chiki Old_Hungarian Old_Italic Old_North_Arabian Old_Permic Old_Persian Old_Sogdian Old_South_Arabian
Old_Turkic Old_Uyghur Oriya Osage Osmanya Pahawh_Hmong Palmyrene Pau_Cin_Hau Phags_Pa Phoenician Psalter_Pahlavi
Rejang Runic Samaritan Saurashtra Sharada Shavian Siddham SignWriting Sinhala Sogdian Sora_Sompeng Soyombo Sundanese
Syloti_Nagri Syriac Tagalog Tagbanwa Tai_Le Tai_Tham Tai_Viet Takri Tamil Tangsa Tangut Telugu Thaana Thai Tibetan
Tifinagh Tirhuta Toto Ugaritic Vai Vithkuqi Wancho Warang_Citi Yezidi Yi Zanabazar_Square
""".split())
_PERL_GROUPS = {
    "=": "lookahead (?=...)", "!": "negative lookahead (?!...)", "<=": "lookbehind (?<=...)",
    "<!": "negative lookbehind (?<!...)", ">": "atomic group (?>...)", "#": "comment (?#...)",
    "P=": "named backreference (?P=...)", "P>": "recursion (?P>...)", "|": "branch reset (?|...)",
}
HINT = "; Istio uses RE2 syntax (github.com/google/re2/wiki/Syntax)"


class RegexError(Exception):
    pass


def _is_word_ascii(char):
    return char.isascii() and (char.isalnum() or char == "_")


class _Parser:
    def __init__(self, text):
        self.text = text
        self.pos = 0

    def peek(self, offset=0):
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else ""

    def fail(self, message):
        raise RegexError(message)

    # ------------------------------------------------------------ escapes

    def escape(self, in_class):
        """After a backslash: 'char' (a single character), 'class' or
        'assertion' (outside classes only)."""
        char = self.peek()
        if not char:
            self.fail("trailing backslash at end of expression")
        self.pos += 1
        if char in "1234567":
            if self.peek() not in _OCTAL or not self.peek():
                self.fail(f"backreference \\{char} is not supported (RE2 has no backreferences)")
            char = "0"
        if char == "0":
            end = self.pos
            while end < self.pos + 2 and end < len(self.text) and self.text[end] in _OCTAL:
                end += 1  # up to three octal digits in all
            self.pos = end
            return "char"
        if char in "89":
            self.fail(f"invalid escape sequence \\{char} (RE2 has no backreferences)")
        if char == "x":
            return self._hex_escape()
        if char in _LITERAL_ESCAPES:
            return "char"
        if char in _PERL_CLASSES:
            return "class"
        if char in "pP":
            self._unicode_class(char)
            return "class"
        if char in "bBAz" and not in_class:
            return "assertion"
        if char == "C" and not in_class:
            self.fail("\\C (any byte) is not supported by Go's regexp, which istiod compiles regexes with")
        if char.isascii() and not char.isalnum():
            return "char"  # escaped punctuation (and space, `_`) is the character itself
        self.fail(f"invalid escape sequence \\{char}" + (" (use \\z: RE2 has no \\Z)" if char == "Z" else ""))
        return "char"

    def _hex_escape(self):
        if self.peek() == "{":
            end = self.text.find("}", self.pos)
            digits = self.text[self.pos + 1:end] if end > 0 else ""
            if end < 0 or not digits or any(c not in _HEX for c in digits) or int(digits, 16) > 0x10FFFF:
                self.fail("invalid escape sequence \\x{...}: hex digits of a code point up to 10FFFF")
            self.pos = end + 1
            return "char"
        digits = self.text[self.pos:self.pos + 2]
        if len(digits) != 2 or any(c not in _HEX for c in digits):
            self.fail("invalid escape sequence \\x: two hex digits, or \\x{...}")
        self.pos += 2
        return "char"

    def _unicode_class(self, letter):
        if self.peek() == "{":
            end = self.text.find("}", self.pos)
            if end < 0:
                self.fail(f"unclosed \\{letter}{{...}}")
            name = self.text[self.pos + 1:end]
            self.pos = end + 1
        else:
            name = self.peek()
            self.pos += 1
        if name.startswith("^"):
            name = name[1:]
        if name not in UNICODE_CLASSES:
            self.fail(f"invalid character class \\{letter}{{{name}}}: not a Unicode category or script")

    # ------------------------------------------------------------ [classes]

    def char_class(self):
        self.pos += 1  # [
        if self.peek() == "^":
            self.pos += 1
        first = True
        while True:
            char = self.peek()
            if not char:
                self.fail("missing closing ] of a character class")
            if char == "]" and not first:
                self.pos += 1
                return
            first = False
            if char == "[" and self.peek(1) == ":":
                end = self.text.find(":]", self.pos + 2)
                if end >= 0:
                    name = self.text[self.pos + 2:end]
                    if name.lstrip("^") not in _POSIX_CLASSES:
                        self.fail(f"invalid character class [:{name}:]")
                    self.pos = end + 2
                    continue
            low = self._class_item()
            # after a class (\d, \pL) a `-` is a literal, as in Perl
            if low is not None and self.peek() == "-" and self.peek(1) not in ("]", ""):
                self.pos += 1
                high = self._class_item()
                if high is None:
                    self.fail("invalid character class range: a range goes from one character to another")
                if high < low:
                    self.fail(f"invalid character class range {chr(low)}-{chr(high)}: the end is before the start")

    def _class_item(self):
        """The code point of a single character, or None for a class."""
        char = self.peek()
        self.pos += 1
        if char != "\\":
            return ord(char)
        start = self.pos
        if self.escape(in_class=True) == "class":
            return None
        return _escape_value(self.text[start:self.pos])

    # ------------------------------------------------------------ groups

    def group_open(self):
        """After `(`: True when it opens a group, False for flags alone."""
        if self.peek() != "?":
            return True
        self.pos += 1
        for prefix in sorted(_PERL_GROUPS, key=len, reverse=True):
            if self.text.startswith(prefix, self.pos):
                self.fail(f"{_PERL_GROUPS[prefix]} is not supported by RE2")
        if self.peek() == "P" and self.peek(1) == "<" or self.peek() == "<":
            self.pos += 2 if self.peek() == "P" else 1
            end = self.text.find(">", self.pos)
            if end < 0:
                self.fail("invalid named capture: missing >")
            name = self.text[self.pos:end]
            if not name or not all(_is_word_ascii(c) for c in name):
                self.fail(f"invalid named capture {name!r}: letters, digits and _ only (ASCII: Go's rule)")
            self.pos = end + 1
            return True
        seen_minus, flags_after_minus = False, 0
        while True:
            char = self.peek()
            self.pos += 1
            if char in _FLAGS:
                flags_after_minus += seen_minus
            elif char == "-" and not seen_minus:
                seen_minus = True
            elif char in (":", ")") and not (seen_minus and not flags_after_minus):
                return char == ":"
            else:
                self.fail("invalid or unsupported Perl syntax (?" + self.text[self.pos - 1:self.pos]
                          + ": flags are i, m, s and U")

    # ------------------------------------------------------------ repetition

    def repeat_bounds(self):
        """`{n}`, `{n,}`, `{n,m}` at pos: (n, m or -1, end), or None (a literal `{`)."""
        end = self.text.find("}", self.pos)
        if end < 0:
            return None
        low, comma, high = self.text[self.pos + 1:end].partition(",")
        if not _is_count(low) or (high and not _is_count(high)):
            return None
        return int(low), (int(high) if high else -1) if comma else int(low), end + 1

    def parse(self):
        # one frame per open group: [largest nested repeat product, product of the last item]
        frames = [[1, 1]]
        can_repeat = False  # an item precedes (not `(`, `|` or the start)
        after_repeat = False
        while self.pos < len(self.text):
            char = self.peek()
            bounds = self.repeat_bounds() if char == "{" else None
            if char in "*+?" or bounds:
                shown = self.text[self.pos:bounds[2]] if bounds else char
                if not can_repeat:
                    self.fail(f"missing argument to repetition operator {shown}")
                if after_repeat:
                    self.fail(f"invalid nested repetition operator {shown} (RE2 has no possessive or stacked "
                              "repetition; use a group)")
                self.pos = bounds[2] if bounds else self.pos + 1
                if bounds:
                    low, high = bounds[0], bounds[1]
                    if low > MAX_REPEAT or high > MAX_REPEAT or (high >= 0 and high < low):
                        self.fail(f"invalid repeat count {shown} (at most {MAX_REPEAT}, min <= max)")
                    count = high if high >= 0 else low
                    if count > 0:
                        frames[-1][1] *= count
                        if frames[-1][1] > MAX_REPEAT:
                            self.fail(f"invalid repeat count {shown}: nested repetitions multiply to more than "
                                      f"{MAX_REPEAT}")
                        frames[-1][0] = max(frames[-1][0], frames[-1][1])
                if self.peek() == "?":
                    self.pos += 1  # non-greedy
                after_repeat = True
                continue
            after_repeat = False
            self.pos += 1
            if char == "\\":
                if self.peek() == "Q":
                    end = self.text.find("\\E", self.pos + 1)
                    literal = self.text[self.pos + 1:end if end >= 0 else len(self.text)]
                    self.pos = end + 2 if end >= 0 else len(self.text)
                    if literal:
                        can_repeat = True
                        frames[-1][1] = 1
                    continue
                self.escape(in_class=False)
            elif char == "[":
                self.pos -= 1
                self.char_class()
            elif char == "(":
                if self.group_open():
                    frames.append([1, 1])
                    if len(frames) > MAX_DEPTH:
                        self.fail("expression nests too deeply")
                    can_repeat = False
                continue
            elif char == ")":
                if len(frames) == 1:
                    self.fail("unexpected ): no group to close")
                inner = frames.pop()[0]
                frames[-1][0] = max(frames[-1][0], inner)
                frames[-1][1] = inner
                can_repeat = True
                continue
            elif char == "|":
                can_repeat = False
                continue
            can_repeat = True
            frames[-1][1] = 1
        if len(frames) > 1:
            self.fail("missing ): a group is not closed")


def _is_count(text):
    """A repeat count: ASCII digits without a leading zero (`{01}` is literal text)."""
    return text.isascii() and text.isdigit() and (text == "0" or not text.startswith("0"))


def _escape_value(escape):
    """The code point of a character escape (without its backslash)."""
    head = escape[0]
    if head in "01234567":
        return int(escape, 8)
    if head == "x":
        return int(escape[1:].strip("{}"), 16)
    return {"a": 7, "f": 12, "t": 9, "n": 10, "r": 13, "v": 11}.get(head, ord(head))


def re2_problem(text):
    """None when both Go's regexp (istiod) and RE2 (Envoy) compile `text`,
    else why not."""
    if not isinstance(text, str):
        return f"{text!r} is not a string"
    try:
        _Parser(text).parse()
    except RegexError as error:
        return f"{error}{HINT}"
    return None
