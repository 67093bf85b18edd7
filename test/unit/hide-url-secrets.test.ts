/** URLs as isobuild prints and records them: no query string (a SAS), no user:password before the host. */
import { describe, expect, it } from 'vitest';
import { hideUrlSecrets } from '../../agent/src/hide-query.js';

describe('hideUrlSecrets', () => {
  it('hides the query string', () => {
    expect(
      hideUrlSecrets(
        'https://acct.blob.core.windows.net/scripts/install.sh?sv=2024-08-04&se=2026-01-02&sig=c2VjcmV0%3D',
      ),
    ).toBe('https://acct.blob.core.windows.net/scripts/install.sh?<query hidden>');
    expect(hideUrlSecrets('http://127.0.0.1:8080/a.sh?token=t0k3n')).toBe(
      'http://127.0.0.1:8080/a.sh?<query hidden>',
    );
    expect(hideUrlSecrets('https://mirror.example/?')).toBe('https://mirror.example/?<query hidden>');
  });

  it('hides a user and password before the host, whatever the scheme', () => {
    const cases: [string, string][] = [
      [
        'https://user:t0k3n@mirror.example/pool/a.deb',
        'https://<credentials hidden>@mirror.example/pool/a.deb',
      ],
      ['http://user:t0k3n@127.0.0.1:8080/a.sh', 'http://<credentials hidden>@127.0.0.1:8080/a.sh'],
      ['http://t0k3n@127.0.0.1:8080/a.sh', 'http://<credentials hidden>@127.0.0.1:8080/a.sh'],
      ['ftp://anon:t0k3n@files.example/pub/x.tgz', 'ftp://<credentials hidden>@files.example/pub/x.tgz'],
      ['git+https://ci:t0k3n@git.example/repo.git', 'git+https://<credentials hidden>@git.example/repo.git'],
      ['HTTPS://user:t0k3n@mirror.example/a', 'HTTPS://<credentials hidden>@mirror.example/a'],
      ['https://user:t0k3n@mirror.example', 'https://<credentials hidden>@mirror.example'],
    ];
    for (const [url, shown] of cases) {
      expect(hideUrlSecrets(url), url).toBe(shown);
      expect(hideUrlSecrets(url), url).not.toContain('t0k3n');
    }
  });

  it('hides both together', () => {
    expect(hideUrlSecrets('https://user:t0k3n@acct.example/c/file?sig=s1gn%40ture')).toBe(
      'https://<credentials hidden>@acct.example/c/file?<query hidden>',
    );
  });

  it('leaves a URL without either as it is', () => {
    for (const url of [
      'https://acct.blob.core.windows.net/scripts/install.sh',
      'http://127.0.0.1:8080/a.sh',
      'http://[::1]:8080/a.sh',
      'file:///tmp/scripts/a.sh',
      'scripts/a.sh',
      'https://mirror.example/a.sh#section',
    ])
      expect(hideUrlSecrets(url), url).toBe(url);
  });

  it('does not take an @ in the path or the query for credentials', () => {
    expect(hideUrlSecrets('https://registry.example/@scope/pkg/-/pkg-1.0.0.tgz')).toBe(
      'https://registry.example/@scope/pkg/-/pkg-1.0.0.tgz',
    );
    expect(hideUrlSecrets('https://mirror.example/users/a@b.example/key.asc')).toBe(
      'https://mirror.example/users/a@b.example/key.asc',
    );
    expect(hideUrlSecrets('https://mirror.example/file?owner=a@b.example')).toBe(
      'https://mirror.example/file?<query hidden>',
    );
    expect(hideUrlSecrets('https://mirror.example?owner=a@b.example')).toBe(
      'https://mirror.example?<query hidden>',
    );
  });

  it('hides a password that holds an @ of its own up to the host (the last @ before the path)', () => {
    expect(hideUrlSecrets('https://user:p@ss@host.example/x')).toBe(
      'https://<credentials hidden>@host.example/x',
    );
    expect(hideUrlSecrets('https://host.example#a@b')).toBe('https://host.example#a@b');
  });
});
