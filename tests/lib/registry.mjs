// A tiny Docker registry (the v2 API's read side) on 127.0.0.1 serving one
// image of one small layer, so a test engine can really pull: Docker
// talks plain HTTP to registries on 127.0.0.0/8. startRegistry({blobDelayMs}) →
// {port, ref, image, tag, requests: [paths], close()}.
import { createServer } from 'node:http';
import { createHash } from 'node:crypto';
import { gzipSync } from 'node:zlib';

const sha = (b) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

// A ustar archive of regular files {name: content}.
function tar(files) {
  const blocks = [];
  for (const [name, content] of Object.entries(files)) {
    const data = Buffer.from(content);
    const hdr = Buffer.alloc(512);
    const put = (s, off, len) => hdr.write(s, off, len, 'ascii');
    put(name, 0, 100);
    put('0000644\0', 100, 8);
    put('0000000\0', 108, 8);
    put('0000000\0', 116, 8);
    put(`${data.length.toString(8).padStart(11, '0')}\0`, 124, 12);
    put(`${Math.floor(Date.now() / 1000).toString(8).padStart(11, '0')}\0`, 136, 12);
    put('        ', 148, 8);
    put('0', 156, 1);
    put('ustar\0', 257, 6);
    put('00', 263, 2);
    let sum = 0;
    for (const b of hdr) sum += b;
    put(`${sum.toString(8).padStart(6, '0')}\0 `, 148, 8);
    blocks.push(hdr, data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  return Buffer.concat(blocks);
}

export async function startRegistry({ image = 'demo/hello', tag = '1', blobDelayMs = 0 } = {}) {
  const layerTar = tar({ 'hello.txt': 'hello from the test registry\n' });
  const layer = gzipSync(layerTar);
  const arch = { x64: 'amd64', arm64: 'arm64' }[process.arch] || process.arch;
  const config = Buffer.from(JSON.stringify({
    architecture: arch, os: 'linux', config: { Cmd: ['/hello.txt'] },
    rootfs: { type: 'layers', diff_ids: [sha(layerTar)] },
    history: [{ created: new Date().toISOString(), created_by: 'tests/lib/registry.mjs' }],
  }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
    config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: config.length, digest: sha(config) },
    layers: [{ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: layer.length, digest: sha(layer) }],
  }));
  const blobs = new Map([[sha(config), config], [sha(layer), layer]]);
  const requests = [];
  const server = createServer((req, res) => {
    requests.push(`${req.method} ${req.url}`);
    res.setHeader('Docker-Distribution-API-Version', 'registry/2.0');
    const send = (status, body, type) => {
      if (type) res.setHeader('Content-Type', type);
      if (body) res.setHeader('Content-Length', body.length);
      res.writeHead(status);
      res.end(req.method === 'HEAD' ? undefined : body);
    };
    const url = req.url.split('?')[0];
    if (url === '/v2/' || url === '/v2') return send(200, Buffer.from('{}'), 'application/json');
    if (url === `/v2/${image}/manifests/${tag}` || url === `/v2/${image}/manifests/${sha(manifest)}`) {
      res.setHeader('Docker-Content-Digest', sha(manifest));
      return send(200, manifest, 'application/vnd.docker.distribution.manifest.v2+json');
    }
    const m = url.match(new RegExp(`^/v2/${image}/blobs/(sha256:[0-9a-f]{64})$`));
    if (m && blobs.has(m[1])) {
      res.setHeader('Docker-Content-Digest', m[1]);
      // A slow registry, so a pull's progress can be watched.
      if (blobDelayMs && req.method === 'GET') return setTimeout(() => send(200, blobs.get(m[1]), 'application/octet-stream'), blobDelayMs);
      return send(200, blobs.get(m[1]), 'application/octet-stream');
    }
    send(404, Buffer.from(JSON.stringify({ errors: [{ code: 'MANIFEST_UNKNOWN', message: 'not here' }] })), 'application/json');
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  return {
    port, image: `127.0.0.1:${port}/${image}`, tag, ref: `127.0.0.1:${port}/${image}:${tag}`, requests,
    close: () => new Promise((r) => server.close(r)),
  };
}
