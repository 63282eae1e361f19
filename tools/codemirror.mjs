// The parts of CodeMirror 6 the dashboard uses (the stack page's compose
// editor, with the YAML language), bundled by make with esbuild from
// node_modules (package-lock.json) into dashboard/vendor/codemirror.<hash>.js.
export { EditorState, Compartment } from '@codemirror/state';
export { EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter, drawSelection } from '@codemirror/view';
export { defaultKeymap, history, historyKeymap, indentWithTab } from '@codemirror/commands';
export { syntaxHighlighting, defaultHighlightStyle, indentOnInput, bracketMatching, foldGutter } from '@codemirror/language';
export { yaml } from '@codemirror/lang-yaml';
export { HighlightStyle } from '@codemirror/language';
export { tags } from '@lezer/highlight';
