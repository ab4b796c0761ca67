-- numbers.lua: numbers in the text typeset as numbers, in both formats.
--
-- The sentences and tables that the notebooks generate write their numbers with
-- Python's format(). Two things about them read badly once typeset:
--
-- * Its minus is the ASCII hyphen-minus: "-1.47" shows a short hyphen where a
--   minus (U+2212) as wide as a plus belongs. A hyphen that starts a number, at
--   the start of a word or after an opening bracket or a separator, becomes a
--   minus; one after a letter or a digit stays ("CD-1", "24-33", "1e-4").
-- * "-357.8 ± 0.2" may break at either space, leaving the error on a line of its
--   own in a narrow table column: in the PDF, the spaces around a ± become
--   non-breaking (Typst hyphenates the headers instead, _quarto.yml). Not in
--   HTML, where the wide tables (tbl-results) need those breaks to fit a laptop's
--   column.
--
-- Code and mathematics are not text here (Code, CodeBlock and Math elements) and
-- are left as they are.

local MINUS = "\u{2212}"
local NBSP = "\u{00A0}"

function Str(el)
  local text = el.text:gsub("^%-(%d)", MINUS .. "%1"):gsub("([%(%[/=<>~:;,])%-(%d)", "%1" .. MINUS .. "%2")
  if text ~= el.text then
    return pandoc.Str(text)
  end
end

function Inlines(inlines)
  if not quarto.doc.is_format("typst") then
    return nil
  end
  for i = #inlines - 1, 2, -1 do
    local el = inlines[i]
    if el.t == "Str" and el.text == "±" and inlines[i - 1].t == "Space" and inlines[i + 1].t == "Space" then
      inlines[i + 1] = pandoc.Str(NBSP)
      inlines[i - 1] = pandoc.Str(NBSP)
    end
  end
  return inlines
end
