export declare const XSS_CORPUS: string[];
