/**
 * Every operation under kill -9: the table's resize, cold migration and rebuild rows (TABLE.resize
 * in operations.ts), on a stack of their own. FAULT_ROWS=<regex>
 * runs the matching rows only.
 */
import { describeTablePart } from './operations';

describeTablePart('resize');
