-- minus-signs.lua: a negative number in the text reads with a minus sign (U+2212).
--
-- The sentences and tables that the notebooks generate write their numbers with
-- Python's format(), whose minus is the ASCII hyphen-minus; typeset, "-1.47"
-- shows a short hyphen where a minus as wide as a plus belongs. This filter
-- rewrites a hyphen that starts a number, at the start of a word or after an
-- opening bracket or a separator, in both formats. A hyphen after a letter or
-- a digit is left as it is ("CD-1", "24-33", "1e-4"), and so are code and
-- mathematics, which are not text (Code, CodeBlock and Math elements).

local MINUS = "\u{2212}"

function Str(el)
  local text = el.text:gsub("^%-(%d)", MINUS .. "%1"):gsub("([%(%[/=<>~:;,])%-(%d)", "%1" .. MINUS .. "%2")
  if text ~= el.text then
    return pandoc.Str(text)
  end
end
