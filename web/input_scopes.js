// ComfyUI-L2P: show only the inputs that apply to the current choice (Forecast Cache's spectrum_ inputs under
// Spectrum, residual_budget under the adaptive placement, L2P Cache's learning inputs under the auto file,
// L2P Calibrate's on_policy_speedup under on-policy).
//
// The rules are not written here: nodes/input_scopes.py holds them (the tooltips' "<choice> only:" come from the
// same table) and scripts/make_input_scopes.py writes them into input_scopes.json next to this file.
// A widget is hidden, never removed or moved: a saved workflow restores widgets_values by position exactly as
// before, and the queued prompt still carries every input (the backend validates them all).
import { app } from "../../scripts/app.js";

const RULES_URL = new URL("./input_scopes.json", import.meta.url);
const TAG = "[ComfyUI-L2P]";

async function loadRules() {
  try {
    const response = await fetch(RULES_URL);
    if (!response.ok) throw new Error(`${RULES_URL}: HTTP ${response.status}`);
    return await response.json();
  } catch (error) {
    console.warn(`${TAG} ${RULES_URL} not loaded, so every input stays visible:`, error);
    return {};
  }
}

const RULES = await loadRules();

// LiteGraph skips a widget whose `hidden` is set when it draws, sizes and hit-tests a node wherever the node has
// isWidgetVisible (ComfyUI frontend 1.27 and later). Without it, setting `hidden` would do nothing visible or
// leave gaps, so such a frontend keeps every input shown (the pack's behaviour before this extension).
function canHide(node) {
  return typeof node.isWidgetVisible === "function" && typeof node.computeSize === "function";
}

function findWidget(node, name) {
  return node.widgets?.find((widget) => widget.name === name);
}

// An input the user connected to another node's output stays visible: hiding it would hide the link's end.
function isLinked(node, widget) {
  return node.inputs?.find((input) => input.widget?.name === widget.name)?.link != null;
}

// LiteGraph adds 4 px of margin to each widget's measured height: a hidden widget measures -4, so it takes none.
const NO_HEIGHT = () => [0, -4];

function setHidden(widget, hidden) {
  widget.hidden = hidden;
  widget.options ??= {};
  widget.options.hidden = hidden;  // what the frontend's Vue node renderer and properties panel read
  // Frontend 1.27's layout (LGraphNode arrangeWidgets) still stacks hidden widgets, each leaving a gap, unless it
  // measures no height: the long-standing computeSize trick, undone when the widget shows again. Later frontends
  // skip hidden widgets when they lay out a node and never call it.
  if (hidden && !("l2pComputeSize" in widget)) {
    widget.l2pComputeSize = Object.hasOwn(widget, "computeSize") ? widget.computeSize : undefined;
    widget.computeSize = NO_HEIGHT;
  } else if (!hidden && "l2pComputeSize" in widget) {
    if (widget.l2pComputeSize === undefined) delete widget.computeSize;
    else widget.computeSize = widget.l2pComputeSize;
    delete widget.l2pComputeSize;
  }
}

function applyScopes(node, scopes) {
  if (!canHide(node)) return;
  let changed = false;
  for (const scope of scopes) {
    const controller = findWidget(node, scope.controller);
    if (!controller) continue;
    const applies = scope.choices.includes(controller.value);
    for (const name of scope.inputs) {
      const widget = findWidget(node, name);
      if (!widget) continue;
      const hidden = !applies && !isLinked(node, widget);
      if (Boolean(widget.hidden) !== hidden) {
        setHidden(widget, hidden);
        changed = true;
      }
    }
  }
  if (changed) {  // fit the node to the widgets now shown (taller when some reappear, shorter when hidden)
    const [minWidth, height] = node.computeSize();
    node.setSize([Math.max(node.size[0], minWidth), height]);
    node.setDirtyCanvas?.(true, true);
  }
}

// Re-apply after the user picks another choice: wrap each controlling combo's callback once per node.
function watchControllers(node, scopes) {
  for (const name of new Set(scopes.map((scope) => scope.controller))) {
    const widget = findWidget(node, name);
    if (!widget || widget.l2pWatched) continue;
    const original = widget.callback;
    widget.callback = function (...args) {
      const result = original?.apply(this, args);
      applyScopes(node, scopes);
      return result;
    };
    widget.l2pWatched = true;
  }
}

function chain(prototype, method, after) {
  const original = prototype[method];
  prototype[method] = function (...args) {
    const result = original?.apply(this, args);
    after(this);
    return result;
  };
}

app.registerExtension({
  name: "ComfyUI-L2P.InputScopes",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const scopes = RULES[nodeData.name];
    if (!scopes) return;
    const refresh = (node) => {
      watchControllers(node, scopes);
      applyScopes(node, scopes);
    };
    chain(nodeType.prototype, "onNodeCreated", refresh);  // a node added from the menu: its defaults
    chain(nodeType.prototype, "onConfigure", refresh);  // a node loaded from a workflow: its saved values
    chain(nodeType.prototype, "onConnectionsChange", refresh);  // an input linked or unlinked
  },
  loadedGraphNode(node) {  // after a whole workflow loaded: values some frontends set after onConfigure
    const scopes = RULES[node.type ?? node.comfyClass];
    if (scopes) {
      watchControllers(node, scopes);
      applyScopes(node, scopes);
    }
  },
});
