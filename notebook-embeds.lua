-- notebook-embeds.lua: what an embedded notebook cell (a div of class
-- quarto-embed-nb-cell, which `{{< embed >}}` writes) becomes in each format.
--
-- HTML: under the cell, a link to it in the notebook's HTML preview
-- ("Source: <title>"), marked up as Quarto marks up its own notebook links.
-- Quarto (1.7.34; its 1.11 sources are the same) makes these links only through its
-- preview queue, which keeps one entry per notebook: a notebook that the
-- manuscript lists under `manuscript: notebooks:` is queued without a link
-- before any embed is seen, so no embed gets a link, and of the embeds of an
-- unlisted notebook only the first does. This filter writes the link into
-- every embed and drops the embed's `notebook` attribute, so that a Quarto
-- that does add its own link cannot add a second one.
--
-- Typst: the div is unwrapped. Typst writes a div as a block, and a figure
-- or table inside a block cannot float (_quarto.yml lets them float to the top or
-- bottom of a page), so a figure too tall for the rest of a page would leave
-- that rest empty.

local function link_embed(div, prefix)
  local notebook = div.attributes["notebook"]
  if notebook == nil then
    return nil
  end
  local relative = pandoc.path.make_relative(notebook, pandoc.path.directory(quarto.doc.input_file))
  local folder = pandoc.path.directory(relative)
  local stem = pandoc.path.split_extension(pandoc.path.filename(relative))
  local href = stem .. "-preview.html"
  if folder ~= "." and folder ~= "" then
    href = folder .. "/" .. href
  end
  -- Quarto names the embedded cell "cell-<label>"; in the preview, the id "cell-<label>"
  -- is missing where the cell is a table or a multi-panel figure, "<label>" never is.
  local cell = div.attributes["notebook-cellId"]
  if cell ~= nil and cell ~= "" then
    href = href .. "#" .. cell:gsub("^cell%-", "")
  end
  local title = div.attributes["notebook-title"] or pandoc.path.filename(relative)
  div.content:insert(pandoc.Plain({
    pandoc.Link(prefix .. ": " .. title, href, "", pandoc.Attr("", {"quarto-notebook-link"})),
  }))
  div.attributes["notebook"] = nil
  return div
end

local function is_embed(div)
  return div.classes:includes("quarto-embed-nb-cell")
end

function Pandoc(doc)
  if quarto.doc.is_format("html") then
    -- Quarto's word for "Source" (language: source-notebooks-prefix), English by default.
    local language = doc.meta.language
    local prefix = language and language["source-notebooks-prefix"]
    prefix = prefix and pandoc.utils.stringify(prefix) or "Source"
    return doc:walk({ Div = function(div) return is_embed(div) and link_embed(div, prefix) or nil end })
  elseif quarto.doc.is_format("typst") then
    return doc:walk({ Div = function(div) return is_embed(div) and div.content or nil end })
  end
end
