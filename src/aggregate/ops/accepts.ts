import type { ColumnType } from '../../define/types.ts';

/** Input-type predicates shared by op specs. */
export const numeric = (t: ColumnType): boolean => t === 'int' || t === 'float';
/** Types with a total order (timestamps are epoch ms numbers; strings compare by code units). */
export const ordered = (t: ColumnType): boolean => t !== 'bool';
export const anyType = (_t: ColumnType): boolean => true;
