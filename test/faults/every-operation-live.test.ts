/**
 * Every operation under kill -9: the table's live migration and evacuate rows (TABLE.live in
 * operations.ts), on a stack of their own. FAULT_ROWS=<regex>
 * runs the matching rows only.
 */
import { describeTablePart } from './operations';

describeTablePart('live');
