/**
 * Every operation under kill -9: the table's snapshot, unshelve, delete, multi-create and reconcile
 * rows (TABLE.lifecycle in operations.ts), on a stack of their own. FAULT_ROWS=<regex>
 * runs the matching rows only.
 */
import { describeTablePart } from './operations';

describeTablePart('lifecycle');
