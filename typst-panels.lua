-- typst-panels.lua: the panels of a multi-panel figure closer together in Typst.
--
-- Quarto (1.7.34, filters/layout/typst.lua) lays the panels of a figure with
-- sub-captions out as `#grid(columns: N, gutter: 2em, ...)`, a gutter it does
-- not let a document set. Five stacked panels with their sub-captions then
-- outgrow an A4 page and the figure's caption runs into the page number, so
-- this filter, run after Quarto's own (`at: post-render` in _quarto.yml),
-- narrows that gutter. HTML is untouched.

local GUTTER = "0.6em"

function RawInline(raw)
  if raw.format ~= "typst" then
    return nil
  end
  local text, n = raw.text:gsub("^(#grid%(columns: %d+, )gutter: 2em,", "%1gutter: " .. GUTTER .. ",")
  if n == 0 then
    return nil
  end
  return pandoc.RawInline("typst", text)
end
