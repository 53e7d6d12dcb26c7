/**
 * The Temporal Web UI shows a build and its placement attempts: headless Chromium (Debian's, driven by
 * playwright-core) opens the dev server's UI, finds a build by its workflow id, and reads its status and
 * the runs of its placementAttempt child. Screenshots are kept in test-artifacts/.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';

import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { chromium } from 'playwright-core';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { CONDUCTOR_TASK_QUEUE } from '../../src/shared/task-queues';
import type { buildInstance } from '../../src/workflows/build-instance';
import { TestCloud } from '../helpers/cloud';
import { freePort } from '../helpers/ports';
import { createDevServerEnv } from '../helpers/temporal';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const ARTIFACTS = path.resolve(__dirname, '..', '..', 'test-artifacts');

describe('the Temporal Web UI', () => {
  let env: TestWorkflowEnvironment;
  let cloud: TestCloud;
  let browser: Browser;
  let page: Page;
  let uiPort: number;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM))
      throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM_PATH)`);
    uiPort = await freePort();
    env = await createDevServerEnv({ uiPort });
    cloud = await new TestCloud(env).open();
    // NOTE: flags from this workplace's notes: without the background-networking ones Chromium keeps
    // trying hosts a closed network refuses.
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    mkdirSync(ARTIFACTS, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
    await cloud?.close();
    await env?.teardown();
  });

  it('finds a build by its workflow id and shows its status and its placement attempts', async () => {
    const hosts = await cloud.addHosts([
      { name: 'ui-a', availabilityZone: 'az-ui', memoryMb: 65536 },
      { name: 'ui-b', availabilityZone: 'az-ui', memoryMb: 32768 },
    ]);
    await cloud.driver('ui-a').setFaults({ spawn: { failNext: 1 } });
    const instanceId = randomUUID();
    const workflowId = `build-${instanceId}`;
    const record = await cloud.run(hosts, () =>
      env.client.workflow.execute<typeof buildInstance>('buildInstance', {
        taskQueue: CONDUCTOR_TASK_QUEUE,
        workflowId,
        args: [{ name: 'ui-vm', flavor: 'm1.small', image: 'cirros', instanceId, availabilityZone: 'az-ui' }],
      })
    );
    expect(record.host).toBe('ui-b');

    const base = `http://127.0.0.1:${uiPort}/namespaces/default/workflows`;
    // Find the build by its workflow id, as a person would: the list filtered by it, then its page.
    await page.goto(`${base}?query=${encodeURIComponent(`WorkflowId="${workflowId}"`)}`);
    const link = page.getByRole('link', { name: workflowId }).first();
    await link.waitFor({ timeout: 30_000 });
    await link.click();
    // The workflow's own page (not the list we came from): its route, then its details rendered.
    await page.waitForURL((url) => url.pathname.includes(`/workflows/${workflowId}/`), { timeout: 30_000 });
    await page.getByText('buildInstance').first().waitFor({ timeout: 30_000 });
    await page.getByText('Completed').first().waitFor({ timeout: 30_000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'web-ui-build.png'), fullPage: true });
    const buildPage = (await page.locator('body').innerText()).toLowerCase();
    expect(buildPage).toContain(workflowId);
    expect(buildPage).toContain('buildinstance');
    expect(buildPage).toMatch(/\bcompleted\b/);

    // Its placement attempts: every run of the placementAttempt child, the failed one on ui-a included.
    const childId = `place-build-${instanceId}`;
    await page.goto(`${base}?query=${encodeURIComponent(`WorkflowId="${childId}"`)}`);
    await page.getByText('Failed').first().waitFor({ timeout: 30_000 });
    await page.screenshot({ path: path.join(ARTIFACTS, 'web-ui-attempts.png'), fullPage: true });
    // Statuses are styled upper case; read the text as a person reads it, ignoring case.
    const attempts = (await page.locator('body').innerText()).toLowerCase();
    expect(attempts).toContain('placementattempt');
    expect(attempts).toMatch(/\bfailed\b/);
    expect(attempts).toMatch(/\bcompleted\b/);
    expect(attempts.split(childId).length - 1).toBeGreaterThanOrEqual(2);
  });
});
