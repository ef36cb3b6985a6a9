// A small Markdown renderer that cannot run anything: it builds DOM nodes and puts message
// text in them only as text (textContent, text nodes), never through innerHTML. HTML inside a
// message is therefore shown as the characters it is made of. Links keep only http(s) and
// mailto targets; any other scheme (javascript:, data:, vbscript:) leaves the link as text.
//
// Supported: paragraphs, line breaks, # headings, fenced code blocks (``` or ~~~), indented
// lists (-, *, + and 1.), > quotes, --- rules, `code`, **bold**, *italic*, _italic_,
// ~~strike~~, [links](https://...) and bare https:// URLs.

const SAFE_SCHEMES = new Set(["http:", "https:", "mailto:"]);

/** Return the URL if it is safe to link to, else null. */
export function safeUrl(raw) {
  const text = raw.trim();
  // Only absolute URLs: relative ones could point at the API with the user's cookies.
  if (!/^(https?:\/\/|mailto:)/i.test(text)) return null;
  try {
    const url = new URL(text);
    return SAFE_SCHEMES.has(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

function link(href, children) {
  const a = document.createElement("a");
  a.href = href;
  a.rel = "noopener noreferrer nofollow";
  a.target = "_blank";
  a.append(...children);
  return a;
}

// Earliest match wins; the groups say which construct matched.
const INLINE =
  /`([^`\n]+)`|\*\*(?=\S)([\s\S]*?\S)\*\*|~~(?=\S)([\s\S]*?\S)~~|\*(?=[^\s*])([\s\S]*?[^\s*])\*|(?<![\p{L}\p{N}_])_(?=[^\s_])([\s\S]*?[^\s_])_(?![\p{L}\p{N}_])|\[([^\]\n]+)\]\(([^)\s]+)\)|(https?:\/\/[^\s<>()]+[^\s<>().,;:!?'"])/u;

/** Render inline Markdown of one block into a list of nodes. */
export function renderInline(text) {
  const nodes = [];
  let rest = text;
  while (rest) {
    const match = INLINE.exec(rest);
    if (!match) {
      nodes.push(document.createTextNode(rest));
      break;
    }
    if (match.index > 0) nodes.push(document.createTextNode(rest.slice(0, match.index)));
    const [whole, code, strong, strike, em, em2, linkText, linkUrl, bareUrl] = match;
    if (code !== undefined) {
      const node = document.createElement("code");
      node.textContent = code;
      nodes.push(node);
    } else if (strong !== undefined || strike !== undefined || em !== undefined || em2 !== undefined) {
      const tag = strong !== undefined ? "strong" : strike !== undefined ? "del" : "em";
      const node = document.createElement(tag);
      node.append(...renderInline(strong ?? strike ?? em ?? em2));
      nodes.push(node);
    } else if (linkText !== undefined) {
      const href = safeUrl(linkUrl);
      if (href) nodes.push(link(href, renderInline(linkText)));
      else nodes.push(document.createTextNode(whole));
    } else if (bareUrl !== undefined) {
      const href = safeUrl(bareUrl);
      nodes.push(href ? link(href, [document.createTextNode(bareUrl)]) : document.createTextNode(bareUrl));
    }
    rest = rest.slice(match.index + whole.length);
  }
  return nodes;
}

function paragraph(lines) {
  const p = document.createElement("p");
  lines.forEach((line, index) => {
    if (index > 0) p.append(document.createElement("br"));
    p.append(...renderInline(line));
  });
  return p;
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)\s*$/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const LIST_ITEM = /^( *)([-*+]|\d{1,9}[.)])\s+(.*)$/;

/**
 * Render Markdown into a fragment. Unfinished constructs (an open code fence while a reply
 * streams) render as far as they go.
 * @param {string} source the Markdown text.
 * @param {object} [options] codeBlock: called with (pre, code, language) to decorate blocks.
 * @returns {DocumentFragment}
 */
export function renderMarkdown(source, options = {}) {
  const fragment = document.createDocumentFragment();
  renderBlocks(source.replace(/\r\n?/g, "\n").split("\n"), fragment, options);
  return fragment;
}

function renderBlocks(lines, parent, options) {
  let i = 0;
  let para = [];
  const flush = () => {
    if (para.length) parent.append(paragraph(para));
    para = [];
  };
  while (i < lines.length) {
    const line = lines[i];
    const fence = FENCE.exec(line);
    if (fence) {
      flush();
      const marker = fence[1];
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(marker)) {
        body.push(lines[i]);
        i += 1;
      }
      i += 1; // the closing fence (or the end)
      const pre = document.createElement("pre");
      const code = document.createElement("code");
      code.textContent = body.join("\n");
      if (fence[2]) code.dataset.language = fence[2];
      pre.append(code);
      if (options.codeBlock) options.codeBlock(pre, code, fence[2]);
      parent.append(pre);
      continue;
    }
    if (!line.trim()) {
      flush();
      i += 1;
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      flush();
      // Message headings sit under the page's own: h1 in a message becomes h3.
      const level = Math.min(heading[1].length + 2, 6);
      const h = document.createElement(`h${level}`);
      h.append(...renderInline(heading[2]));
      parent.append(h);
      i += 1;
      continue;
    }
    if (RULE.test(line) && !para.length) {
      parent.append(document.createElement("hr"));
      i += 1;
      continue;
    }
    if (QUOTE.test(line)) {
      flush();
      const quoted = [];
      while (i < lines.length && QUOTE.test(lines[i])) {
        quoted.push(QUOTE.exec(lines[i])[1]);
        i += 1;
      }
      const blockquote = document.createElement("blockquote");
      renderBlocks(quoted, blockquote, options);
      parent.append(blockquote);
      continue;
    }
    const item = LIST_ITEM.exec(line);
    if (item) {
      flush();
      i = renderList(lines, i, parent, options);
      continue;
    }
    para.push(line);
    i += 1;
  }
  flush();
}

function renderList(lines, start, parent, options) {
  const first = LIST_ITEM.exec(lines[start]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const list = document.createElement(ordered ? "ol" : "ul");
  if (ordered) {
    const number = parseInt(first[2], 10);
    if (number !== 1) list.start = number;
  }
  let i = start;
  while (i < lines.length) {
    const item = LIST_ITEM.exec(lines[i]);
    if (!item || item[1].length !== indent || /\d/.test(item[2]) !== ordered) break;
    const body = [item[3]];
    i += 1;
    // The item's continuation: more-indented lines (nested lists, wrapped text).
    while (i < lines.length && lines[i].trim() && /^\s/.test(lines[i])) {
      const nested = LIST_ITEM.exec(lines[i]);
      if (nested && nested[1].length <= indent) break;
      body.push(lines[i].slice(Math.min(indent + 2, lines[i].search(/\S/))));
      i += 1;
    }
    const li = document.createElement("li");
    if (body.length === 1) li.append(...renderInline(body[0]));
    else renderBlocks(body, li, options);
    list.append(li);
  }
  parent.append(list);
  return i;
}
