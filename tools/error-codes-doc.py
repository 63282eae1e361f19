# Rewrites the error-code list and enum of docs/openapi.yaml from
# core/src/http/errors.c: python3 tools/error-codes-doc.py . (run from the repo root)
import re,sys
root=sys.argv[1]
codes=re.findall(r'^\s*\{"([a-z_]+)", (\d{3}), "((?:[^"\\]|\\.)*)"\}', open(root+'/core/src/http/errors.c').read(), re.M)
p=root+'/docs/openapi.yaml'; s=open(p).read()
start=s.index("            code:\n              type: string\n              description: |\n")
end=s.index("              enum: [",start); end=s.index("\n",end)+1
lines="            code:\n              type: string\n              description: |\n                One of the error vocabulary (core/src/http/errors.c), with its usual status:\n"
for c,st,m in codes:
    lines+=f"                - `{c}` ({st}): {m}\n"
lines+="              enum: ["+", ".join(c for c,_,_ in codes)+"]\n"
s=s[:start]+lines+s[end:]
open(p,'w').write(s)
