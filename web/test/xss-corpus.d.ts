export declare const XSS_CORPUS: string[];
export declare const CSS_FETCH_CORPUS: string[];
