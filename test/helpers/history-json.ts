/**
 * History <-> proto JSON (the format of `temporal workflow show --output json` and of the SDK's
 * historyToJSON/historyFromJSON), for the committed replay histories.
 *
 * Why not the SDK's own functions: in this install @temporalio/common and @temporalio/proto each carry
 * their own nested copy of protobufjs 8, so the SDK's historyToJSON/historyFromJSON (protojson from
 * common's copy, message types from proto's) fail with "type must be a Type". These do the same with
 * protojson from the copy @temporalio/proto's types were made by.
 */
import { createRequire } from 'node:module';

import * as proto from '@temporalio/proto';
import { patchProtobufRoot } from '@temporalio/proto/lib/patch-protobuf-root';

type History = proto.temporal.api.history.v1.IHistory;

interface ProtoJson {
  toJson(type: unknown, message: unknown): unknown;
  fromJson(type: unknown, json: unknown, options: { ignoreUnknownFields: boolean }): History | null;
}

const protoRequire = createRequire(require.resolve('@temporalio/proto'));
const protojson = protoRequire('protobufjs/ext/protojson') as ProtoJson;
// The module object itself (its root is what the patch walks), as the SDK's proto-utils takes it.
const protoModule = protoRequire('@temporalio/proto') as Record<string, unknown>;
const historyType = (patchProtobufRoot(protoModule) as unknown as { lookupType(name: string): unknown }).lookupType(
  'temporal.api.history.v1.History'
);

/** The history as indented proto JSON. */
export function historyToJSON(history: History): string {
  return JSON.stringify(
    protojson.toJson(historyType, proto.temporal.api.history.v1.History.fromObject(history)),
    null,
    2
  );
}

/** A proto JSON history (as historyToJSON writes it) back to a History the replayer takes. */
export function historyFromJSON(json: unknown): History {
  const loaded = protojson.fromJson(historyType, json, { ignoreUnknownFields: true });
  if (!loaded) throw new TypeError('invalid history JSON');
  return loaded;
}
